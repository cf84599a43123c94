#ifndef PSM_KERNELS_H
#define PSM_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Hamming distances between `query` (`words` 64-bit words) and each of `n` codes stored one after
/// another, written to `out`. Codes whose vector scale `scales[i]` is 0 (no vector) get 0xFFFF. Exact integer arithmetic:
/// every implementation returns the same values; the POPCNT path is chosen at run time when the CPU
/// has it.
void psm_hamming(const uint64_t *codes, const uint64_t *query, size_t words, size_t n, const float *scales, uint16_t *out);

/// 1 when the POPCNT path is in use (for benchmarks' reports).
int psm_hamming_uses_popcnt(void);

#endif
