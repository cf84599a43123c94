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

/// CRC-32C (Castagnoli) of `count` bytes, continuing from `crc` (0 to start; pass the previous result to
/// checksum in pieces). Uses the CPU's CRC32 instruction when it has one (chosen at run time); the result
/// is the same on every path.
uint32_t psm_crc32c(uint32_t crc, const void *bytes, size_t count);

/// The same function without the CPU instruction (a byte-at-a-time table), for tests.
uint32_t psm_crc32c_portable(uint32_t crc, const void *bytes, size_t count);

/// 1 when `psm_crc32c` uses the CPU's CRC32 instruction.
int psm_crc32c_uses_hardware(void);

#endif
