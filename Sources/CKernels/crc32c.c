// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) for the journal's records (SPEC.md §4.1).
// The CPU's CRC32 instruction (SSE4.2 on x86-64, the CRC extension on ARMv8) when it has one, chosen
// at run time; otherwise a byte-at-a-time table. Every path computes the same function, so the choice
// never changes a stored byte; the tests compare this against the Swift slicing-by-8 reference.
#include "psm_kernels.h"
#include <string.h>

static uint32_t table[256];
static int table_ready;

static void make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t crc_portable(uint32_t c, const uint8_t *p, size_t n) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) make_table(); // idempotent: racing threads write equal values
    while (n--) c = table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define PSM_CRC_HW 1
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n) {
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}

static int has_hw(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
#elif defined(__aarch64__) && defined(__linux__) && (defined(__clang__) || defined(__GNUC__))
#define PSM_CRC_HW 1
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
__attribute__((target("crc")))
static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_arm_crc32cd(c, v);
        p += 8;
        n -= 8;
    }
    while (n--) c = __builtin_arm_crc32cb(c, *p++);
    return c;
}

static int has_hw(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
static int has_hw(void) { return 0; }
#endif

static int hw_state = -1; // -1 unknown, 0 no, 1 yes

static int use_hw(void) {
    int s = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
    if (s < 0) {
        s = has_hw() ? 1 : 0;
        __atomic_store_n(&hw_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

int psm_crc32c_uses_hardware(void) { return use_hw(); }

uint32_t psm_crc32c(uint32_t crc, const void *bytes, size_t count) {
    uint32_t c = ~crc;
    if (count == 0) return crc;
#ifdef PSM_CRC_HW
    if (use_hw()) return ~crc_hw(c, (const uint8_t *)bytes, count);
#endif
    return ~crc_portable(c, (const uint8_t *)bytes, count);
}

uint32_t psm_crc32c_portable(uint32_t crc, const void *bytes, size_t count) {
    if (count == 0) return crc;
    return ~crc_portable(~crc, (const uint8_t *)bytes, count);
}
