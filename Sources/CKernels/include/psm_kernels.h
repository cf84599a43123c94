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

/// Integer products for the encoder (SPEC.md §12.6). Weights `w` (k rows × n columns, int8, row-major)
/// are packed once by `psm_igemm_pack` into `psm_igemm_packed_count(k, n)` int16 values: blocks of 16
/// columns, each holding pairs of rows interleaved as AVX-512 VNNI reads them.
size_t psm_igemm_packed_count(size_t k, size_t n);
void psm_igemm_pack(const int8_t *w, size_t k, size_t n, int16_t *packed);

/// c[r][col] = Σ_k a[r][k] · w[k][col] for r < m and the columns of blocks [block_begin, block_end)
/// (16 columns each, the last one cut at n), as the exact int32 sum converted to float. Rows of `a`
/// are `lda` int16 apart; lda is even and at least k, and a[r][k] is 0 when k is odd. Sums must fit
/// in int32 (k · max|a| · 127 < 2^31). AVX-512 VNNI when the CPU has it, else a scalar loop.
void psm_igemm(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
               size_t block_begin, size_t block_end, float *c, size_t ldc);

/// The scalar loop, for tests.
void psm_igemm_reference(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
                         size_t block_begin, size_t block_end, float *c, size_t ldc);

/// 1 when `psm_igemm` runs on AVX-512 VNNI.
int psm_igemm_available(void);

/// The path `psm_igemm` takes: 2 AVX-512 VNNI, 1 AVX2, 0 the scalar loop. The environment variable
/// PSM_IGEMM_PATH=avx2 or =scalar caps it (read once).
int psm_igemm_path(void);

/// The AVX2 path alone (the scalar loop on a CPU without AVX2), for tests.
void psm_igemm_avx2(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
                    size_t block_begin, size_t block_end, float *c, size_t ldc);

/// Quantizes each row of `x` (rows × cols floats) to integers in ±levels with one scale per row (written
/// to `scales`), as int16 rows `ldq` apart (columns cols..<ldq set to 0) — the same values, bit for bit,
/// as the encoder's Swift `Kernels.quantizeRows`.
void psm_quantize_rows_i16(const float *x, size_t rows, size_t cols, int levels, int16_t *q, size_t ldq, float *scales);

/// The same without AVX-512, for tests.
void psm_quantize_rows_i16_portable(const float *x, size_t rows, size_t cols, int levels, int16_t *q, size_t ldq, float *scales);

#endif
