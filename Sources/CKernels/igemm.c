// Exact integer products for the encoder's dense layers (SPEC.md §12.6): activations are integers in
// ±1023 (int16), weights int8 (stored as int16 pairs), sums exact in int32. The x86 AVX-512 VNNI
// instruction vpdpwssd (16 lanes × 2 int16 multiply-adds into int32) does 32 multiply-adds at once,
// and the weights are packed once, at load, in the order it reads them; OpenBLAS sgemm instead repacks
// the fp32-widened weights on every call, which dominates a single query. The result is the exact
// integer sum, so it equals the sgemm path's bit for bit (there, chunks along k keep every partial sum
// an exact integer in fp32); a CPU without VNNI takes that path.
#include "psm_kernels.h"
#include <stdlib.h>
#include <string.h>

#define BLOCK 16  // output columns per packed block (one zmm of int32)

size_t psm_igemm_packed_count(size_t k, size_t n) {
    size_t pairs = (k + 1) / 2, blocks = (n + BLOCK - 1) / BLOCK;
    return blocks * pairs * 2 * BLOCK;
}

void psm_igemm_pack(const int8_t *w, size_t k, size_t n, int16_t *packed) {
    size_t pairs = (k + 1) / 2, blocks = (n + BLOCK - 1) / BLOCK;
    for (size_t b = 0; b < blocks; b++) {
        for (size_t p = 0; p < pairs; p++) {
            int16_t *dst = packed + (b * pairs + p) * 2 * BLOCK;
            for (size_t j = 0; j < BLOCK; j++) {
                size_t col = b * BLOCK + j;
                for (size_t h = 0; h < 2; h++) {
                    size_t row = 2 * p + h;
                    dst[2 * j + h] = (row < k && col < n) ? w[row * n + col] : 0;
                }
            }
        }
    }
}

void psm_igemm_reference(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
                         size_t block_begin, size_t block_end, float *c, size_t ldc) {
    size_t pairs = (k + 1) / 2;
    for (size_t r = 0; r < m; r++) {
        for (size_t b = block_begin; b < block_end; b++) {
            for (size_t j = 0; j < BLOCK && b * BLOCK + j < n; j++) {
                int32_t sum = 0;
                for (size_t p = 0; p < pairs; p++) {
                    const int16_t *w = packed + (b * pairs + p) * 2 * BLOCK + 2 * j;
                    int32_t a0 = a[r * lda + 2 * p], a1 = 2 * p + 1 < k ? a[r * lda + 2 * p + 1] : 0;
                    sum += a0 * w[0] + a1 * w[1];
                }
                c[r * ldc + b * BLOCK + j] = (float)sum;
            }
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define PSM_IGEMM_HW 1
#define HW __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// One tile: MR rows × two blocks (32 columns), all k. `a` rows have an even, zero-padded length lda.
static inline __attribute__((always_inline)) HW void tile(
    int mr, const int16_t *a, size_t lda, size_t pairs, const int16_t *p0, const int16_t *p1, int two,
    float *c, size_t ldc, __mmask16 m0, __mmask16 m1) {
    __m512i acc0[8], acc1[8];
    for (int r = 0; r < mr; r++) { acc0[r] = _mm512_setzero_si512(); acc1[r] = _mm512_setzero_si512(); }
    for (size_t p = 0; p < pairs; p++) {
        __m512i w0 = _mm512_loadu_si512((const void *)(p0 + p * 2 * BLOCK));
        __m512i w1 = two ? _mm512_loadu_si512((const void *)(p1 + p * 2 * BLOCK)) : _mm512_setzero_si512();
        for (int r = 0; r < mr; r++) {
            int32_t pair;
            memcpy(&pair, a + r * lda + 2 * p, 4);
            __m512i x = _mm512_set1_epi32(pair);
            acc0[r] = _mm512_dpwssd_epi32(acc0[r], x, w0);
            if (two) acc1[r] = _mm512_dpwssd_epi32(acc1[r], x, w1);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, m0, _mm512_cvtepi32_ps(acc0[r]));
        if (two) _mm512_mask_storeu_ps(c + r * ldc + BLOCK, m1, _mm512_cvtepi32_ps(acc1[r]));
    }
}

static HW void igemm_hw(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
                        size_t block_begin, size_t block_end, float *c, size_t ldc) {
    size_t pairs = (k + 1) / 2;
    for (size_t b = block_begin; b < block_end; b += 2) {
        int two = b + 1 < block_end;
        size_t col = b * BLOCK;
        size_t left0 = n - col < BLOCK ? n - col : BLOCK;
        size_t left1 = two ? (n - col - BLOCK < BLOCK ? n - col - BLOCK : BLOCK) : 0;
        __mmask16 m0 = (__mmask16)((1u << left0) - 1), m1 = (__mmask16)((1u << left1) - 1);
        const int16_t *p0 = packed + b * pairs * 2 * BLOCK, *p1 = p0 + pairs * 2 * BLOCK;
        size_t r = 0;
        for (; r + 8 <= m; r += 8) tile(8, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1);
        switch (m - r) {
        case 7: tile(7, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        case 6: tile(6, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        case 5: tile(5, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        case 4: tile(4, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        case 3: tile(3, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        case 2: tile(2, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        case 1: tile(1, a + r * lda, lda, pairs, p0, p1, two, c + r * ldc + col, ldc, m0, m1); break;
        default: break;
        }
    }
}

// AVX2: the same packed layout read as two 8-lane halves per block; vpmaddwd multiplies the int16
// pairs and adds each pair into int32 (exact: |a·w| ≤ 1023 · 127), then vpaddd accumulates.
#define HW2 __attribute__((target("avx2")))

static inline __attribute__((always_inline)) HW2 void tile2(
    int mr, const int16_t *a, size_t lda, size_t pairs, const int16_t *p0, float *c, size_t ldc, size_t left) {
    __m256i lo[4], hi[4];
    for (int r = 0; r < mr; r++) { lo[r] = _mm256_setzero_si256(); hi[r] = _mm256_setzero_si256(); }
    for (size_t p = 0; p < pairs; p++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(p0 + p * 2 * BLOCK));
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(p0 + p * 2 * BLOCK + BLOCK));
        for (int r = 0; r < mr; r++) {
            int32_t pair;
            memcpy(&pair, a + r * lda + 2 * p, 4);
            __m256i x = _mm256_set1_epi32(pair);
            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(x, w0));
            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(x, w1));
        }
    }
    for (int r = 0; r < mr; r++) {
        float out[BLOCK];
        _mm256_storeu_ps(out, _mm256_cvtepi32_ps(lo[r]));
        _mm256_storeu_ps(out + 8, _mm256_cvtepi32_ps(hi[r]));
        memcpy(c + r * ldc, out, left * sizeof(float));
    }
}

static HW2 void igemm_avx2(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
                           size_t block_begin, size_t block_end, float *c, size_t ldc) {
    size_t pairs = (k + 1) / 2;
    for (size_t b = block_begin; b < block_end; b++) {
        size_t col = b * BLOCK, left = n - col < BLOCK ? n - col : BLOCK;
        const int16_t *p0 = packed + b * pairs * 2 * BLOCK;
        size_t r = 0;
        for (; r + 4 <= m; r += 4) tile2(4, a + r * lda, lda, pairs, p0, c + r * ldc + col, ldc, left);
        switch (m - r) {
        case 3: tile2(3, a + r * lda, lda, pairs, p0, c + r * ldc + col, ldc, left); break;
        case 2: tile2(2, a + r * lda, lda, pairs, p0, c + r * ldc + col, ldc, left); break;
        case 1: tile2(1, a + r * lda, lda, pairs, p0, c + r * ldc + col, ldc, left); break;
        default: break;
        }
    }
}

static int has_hw(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

static int has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#else
static int has_hw(void) { return 0; }
static int has_avx2(void) { return 0; }
#endif

// 2 = AVX-512 VNNI, 1 = AVX2, 0 = neither; PSM_IGEMM_PATH=avx2 or =scalar caps it (benchmarks, tests).
static int hw_state = -1;

static int path(void) {
    int v = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
    if (v < 0) {
        v = has_hw() ? 2 : has_avx2() ? 1 : 0;
        const char *cap = getenv("PSM_IGEMM_PATH");
        if (cap && strcmp(cap, "avx2") == 0 && v > 1) v = 1;
        if (cap && strcmp(cap, "scalar") == 0) v = 0;
        __atomic_store_n(&hw_state, v, __ATOMIC_RELAXED);
    }
    return v;
}

int psm_igemm_available(void) { return path() == 2; }

int psm_igemm_path(void) { return path(); }

void psm_igemm(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
               size_t block_begin, size_t block_end, float *c, size_t ldc) {
#ifdef PSM_IGEMM_HW
    switch (path()) {
    case 2: igemm_hw(a, m, k, lda, packed, n, block_begin, block_end, c, ldc); return;
    case 1: igemm_avx2(a, m, k, lda, packed, n, block_begin, block_end, c, ldc); return;
    default: break;
    }
#endif
    psm_igemm_reference(a, m, k, lda, packed, n, block_begin, block_end, c, ldc);
}

void psm_igemm_avx2(const int16_t *a, size_t m, size_t k, size_t lda, const int16_t *packed, size_t n,
                    size_t block_begin, size_t block_end, float *c, size_t ldc) {
#ifdef PSM_IGEMM_HW
    if (has_avx2()) { igemm_avx2(a, m, k, lda, packed, n, block_begin, block_end, c, ldc); return; }
#endif
    psm_igemm_reference(a, m, k, lda, packed, n, block_begin, block_end, c, ldc);
}

// Per-row quantization to int16 for psm_igemm, the same arithmetic as Kernels.quantizeRows in Swift
// (which writes the same integers as floats for the sgemm path): scale = max|x| / levels, each value
// times levels / max|x|, rounded to nearest even by adding and removing 1.5 · 2^23, clamped to
// ±levels. No contraction into FMA, so every step rounds as the Swift code does.
#pragma STDC FP_CONTRACT OFF

// max(m, |row[c]|) over c in [from, cols), as the Swift code folds it.
static inline float abs_max(const float *row, size_t from, size_t cols, float m) {
    for (size_t c = from; c < cols; c++) {
        float a = __builtin_fabsf(row[c]);
        m = a >= m ? a : m;
    }
    return m;
}

// Writes the row's scale (max|x| / levels, or 1 for a zero row) and returns the factor values are
// multiplied by (levels / max|x|, or 1).
static inline float row_scale(float m, float l, float *scale) {
    *scale = m > 0 ? m / l : 1;
    return m > 0 ? l / m : 1;
}

static void quantize_portable(const float *x, size_t rows, size_t cols, int levels, int16_t *q, size_t ldq, float *scales) {
    const float l = (float)levels;
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        float inv = row_scale(abs_max(row, 0, cols, 0), l, &scales[r]);
        int16_t *out = q + r * ldq;
        for (size_t c = 0; c < cols; c++) {
            float t = row[c] * inv;
            float v = (t + 12582912.0f);
            v = v - 12582912.0f;
            v = v > -l ? v : -l;
            v = v < l ? v : l;
            out[c] = (int16_t)v;
        }
        for (size_t c = cols; c < ldq; c++) out[c] = 0;
    }
}

#ifdef PSM_IGEMM_HW
// The same steps 16 lanes at a time. The maximum of |x| is exact in any order; each lane's multiply,
// add, subtract and clamps are the scalar ones (no FMA), and the results are integers in ±levels, so
// the conversion and the narrowing to int16 are exact.
static HW void quantize_hw(const float *x, size_t rows, size_t cols, int levels, int16_t *q, size_t ldq, float *scales) {
    const float l = (float)levels;
    const __m512 magic = _mm512_set1_ps(12582912.0f), hi = _mm512_set1_ps(l), lo = _mm512_set1_ps(-l);
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * cols;
        __m512 mv = _mm512_setzero_ps();
        size_t c = 0;
        for (; c + 16 <= cols; c += 16) mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_loadu_ps(row + c)));
        float inv = row_scale(abs_max(row, c, cols, _mm512_reduce_max_ps(mv)), l, &scales[r]);
        int16_t *out = q + r * ldq;
        const __m512 iv = _mm512_set1_ps(inv);
        for (c = 0; c < cols; c += 16) {
            __mmask16 k = cols - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c)) - 1);
            __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + c), iv);
            __m512 v = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            _mm256_mask_storeu_epi16(out + c, k, _mm512_cvtsepi32_epi16(_mm512_cvttps_epi32(v)));
        }
        for (c = cols; c < ldq; c++) out[c] = 0;
    }
}
#endif

void psm_quantize_rows_i16(const float *x, size_t rows, size_t cols, int levels, int16_t *q, size_t ldq, float *scales) {
#ifdef PSM_IGEMM_HW
    if (psm_igemm_available()) { quantize_hw(x, rows, cols, levels, q, ldq, scales); return; }
#endif
    quantize_portable(x, rows, cols, levels, q, ldq, scales);
}

void psm_quantize_rows_i16_portable(const float *x, size_t rows, size_t cols, int levels, int16_t *q, size_t ldq, float *scales) {
    quantize_portable(x, rows, cols, levels, q, ldq, scales);
}
