/* faultshim: an LD_PRELOAD library that makes the N-th write or sync of a chosen file fail.
 *
 *   PSM_FAULT_MATCH=data.mdb      fail only calls on files whose path contains this (required)
 *   PSM_FAULT_AT=N                the N-th matching call (1-based) fails
 *   PSM_FAULT_ERRNO=EIO|ENOSPC    the error returned (default EIO)
 *   PSM_FAULT_OPS=write,sync      which calls count: write (write, pwrite, pwrite64, writev, pwritev),
 *                                 sync (fsync, fdatasync, msync); default both
 *
 * Used by Tests/JournalTests/FaultTests.swift (issue 8): every failure must surface as a clear error,
 * the journal must be reopened rather than reused, and nothing acknowledged may be lost.
 * Build: cc -shared -fPIC -O1 -o faultshim.so Scripts/faultshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long counter = 0;

static int matches(int fd) {
    const char *want = getenv("PSM_FAULT_MATCH");
    if (!want || !*want) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strstr(path, want) != NULL;
}

static int enabled(const char *kind) {
    const char *ops = getenv("PSM_FAULT_OPS");
    return !ops || !*ops || strstr(ops, kind) != NULL;
}

/* 1 when this call must fail (errno set). */
static int inject(int fd, const char *kind) {
    if (!enabled(kind) || (fd >= 0 && !matches(fd))) return 0;
    const char *at = getenv("PSM_FAULT_AT");
    if (!at) return 0;
    long n = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
    if (n != atol(at)) return 0;
    const char *e = getenv("PSM_FAULT_ERRNO");
    errno = (e && strcmp(e, "ENOSPC") == 0) ? ENOSPC : EIO;
    fprintf(stderr, "faultshim: failing %s call %ld on fd %d with %s\n", kind, n, fd, errno == ENOSPC ? "ENOSPC" : "EIO");
    return 1;
}

#define REAL(name, ret, ...) static ret (*real_##name)(__VA_ARGS__); if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *b, size_t n) { REAL(write, ssize_t, int, const void *, size_t); if (inject(fd, "write")) return -1; return real_write(fd, b, n); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { REAL(pwrite, ssize_t, int, const void *, size_t, off_t); if (inject(fd, "write")) return -1; return real_pwrite(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) { REAL(pwrite64, ssize_t, int, const void *, size_t, off_t); if (inject(fd, "write")) return -1; return real_pwrite64(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec *v, int c) { REAL(writev, ssize_t, int, const struct iovec *, int); if (inject(fd, "write")) return -1; return real_writev(fd, v, c); }
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t o) { REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t); if (inject(fd, "write")) return -1; return real_pwritev(fd, v, c, o); }
int fsync(int fd) { REAL(fsync, int, int); if (inject(fd, "sync")) return -1; return real_fsync(fd); }
int fdatasync(int fd) { REAL(fdatasync, int, int); if (inject(fd, "sync")) return -1; return real_fdatasync(fd); }
int msync(void *a, size_t n, int f) { REAL(msync, int, void *, size_t, int); if (inject(-1, "sync")) return -1; return real_msync(a, n, f); }
