// Hamming distances for the dense index's first stage (SPEC.md §11.4). Portable C plus a POPCNT
// variant selected at run time; both compute exact integer counts, so the choice never changes a result.
#include "psm_kernels.h"

static inline unsigned popcount_swar(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

static void hamming_portable(const uint64_t *codes, const uint64_t *q, size_t w, size_t n, const float *scales, uint16_t *out) {
    for (size_t i = 0; i < n; i++) {
        if (scales[i] == 0.0f) { out[i] = 0xFFFF; continue; }
        unsigned h = 0;
        const uint64_t *c = codes + i * w;
        for (size_t k = 0; k < w; k++) h += popcount_swar(c[k] ^ q[k]);
        out[i] = (uint16_t)h;
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
__attribute__((target("popcnt")))
static void hamming_popcnt(const uint64_t *codes, const uint64_t *q, size_t w, size_t n, const float *scales, uint16_t *out) {
    for (size_t i = 0; i < n; i++) {
        if (scales[i] == 0.0f) { out[i] = 0xFFFF; continue; }
        unsigned h = 0;
        const uint64_t *c = codes + i * w;
        for (size_t k = 0; k < w; k++) h += (unsigned)__builtin_popcountll(c[k] ^ q[k]);
        out[i] = (uint16_t)h;
    }
}

static int has_popcnt(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt");
}
#else
static int has_popcnt(void) { return 0; }
#endif

int psm_hamming_uses_popcnt(void) { return has_popcnt(); }

void psm_hamming(const uint64_t *codes, const uint64_t *query, size_t words, size_t n, const float *scales, uint16_t *out) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (has_popcnt()) { hamming_popcnt(codes, query, words, n, scales, out); return; }
#endif
    hamming_portable(codes, query, words, n, scales, out);
}
