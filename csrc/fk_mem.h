/*
 * fk_mem.h - memory helpers for the shard log (header-only, plain C, no Python API).
 *
 * fk_prefault(p, n): fault in the whole pages of p[0..n) now, in one system call
 * (Linux >= 5.14: madvise(MADV_POPULATE_WRITE)); a no-op elsewhere or when the kernel
 * refuses.  Touching fresh memory one page at a time costs a trap per 4 KiB page
 * (~5 us on a KVM guest, ~150 ns per 128-byte record); populating a whole arena
 * extension at once costs about half.  The content of the memory is not changed.
 */
#ifndef FASTKIN_MEM_H
#define FASTKIN_MEM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define FK_HAVE_PREFAULT 1
#else
#define FK_HAVE_PREFAULT 0
#endif

static inline int fk_prefault(void *p, size_t n)
{
#if FK_HAVE_PREFAULT
    static long page = 0;   /* benign race: every thread stores the same value */
    uintptr_t a, e;
    if (page <= 0) {
        page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
            page = 4096;
    }
    a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    e = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (e > a)
        return madvise((void *)a, (size_t)(e - a), MADV_POPULATE_WRITE);
    return 0;
#else
    (void)p;
    (void)n;
    return 0;
#endif
}

#endif /* FASTKIN_MEM_H */
