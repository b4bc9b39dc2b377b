/*
 * fk_mem.h - memory helpers for the shard log (header-only, plain C, no Python API).
 *
 * fk_prefault(p, n): fault in the whole pages of p[0..n) now, in one system call
 * (Linux >= 5.14: madvise(MADV_POPULATE_WRITE)); a no-op elsewhere or when the kernel
 * refuses.  Touching fresh memory one page at a time costs a trap per 4 KiB page
 * (~5 us on a KVM guest, ~150 ns per 128-byte record); populating a whole arena
 * extension at once costs about half.  The content of the memory is not changed.
 *
 * fk_huge_reserve(n) / fk_huge_shrink() / fk_huge_release(): big segment arenas live in their
 * own anonymous mapping, aligned to FK_HUGE (2 MiB) and advised MADV_HUGEPAGE, so that on Linux
 * with transparent huge pages ("madvise" or "always") a 2 MiB page is faulted and zeroed at a
 * time: measured ~22 ns per 128-byte record instead of ~90 (4 KiB faults) or ~75 (populate) on
 * this KVM guest.  The mapping is MAP_NORESERVE: untouched pages cost nothing.  fk_huge_reserve
 * returns NULL where mmap is unavailable (the caller falls back to malloc).
 */
#ifndef FASTKIN_MEM_H
#define FASTKIN_MEM_H

#include <stddef.h>
#include <stdint.h>

#define FK_HUGE ((size_t)2 << 20)

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#define FK_HAVE_PREFAULT 1
#define FK_HAVE_MMAP 1
#else
#define FK_HAVE_PREFAULT 0
#define FK_HAVE_MMAP 0
#endif

static inline long fk_page_size(void)
{
#if FK_HAVE_MMAP
    static long page = 0;   /* benign race: every thread stores the same value */
    if (page <= 0) {
        page = sysconf(_SC_PAGESIZE);
        if (page <= 0)
            page = 4096;
    }
    return page;
#else
    return 4096;
#endif
}

static inline int fk_prefault(void *p, size_t n)
{
#if FK_HAVE_PREFAULT
    long page = fk_page_size();
    uintptr_t a, e;
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

/* fk_populate_read(p, n): map the pages of a read-only file mapping (page-aligned p) in one system call
   (madvise(MADV_POPULATE_READ), Linux >= 5.14), instead of a trap per fault-around block as they are read;
   a no-op elsewhere or when the kernel refuses. */
static inline int fk_populate_read(void *p, size_t n)
{
#if FK_HAVE_PREFAULT
    return madvise(p, n, MADV_POPULATE_READ);
#else
    (void)p;
    (void)n;
    return 0;
#endif
}

/* n bytes (a multiple of FK_HUGE) of FK_HUGE-aligned, lazily backed, huge-page-advised memory;
   NULL when unsupported or out of address space. */
static inline void *fk_huge_reserve(size_t n)
{
#if FK_HAVE_MMAP
    size_t span = n + FK_HUGE, head, tail;
    uintptr_t a;
    unsigned char *p = (unsigned char *)mmap(NULL, span, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == (unsigned char *)MAP_FAILED)
        return NULL;
    a = ((uintptr_t)p + FK_HUGE - 1) & ~(uintptr_t)(FK_HUGE - 1);
    head = (size_t)(a - (uintptr_t)p);
    tail = span - head - n;
    if (head)
        munmap(p, head);
    if (tail)
        munmap((void *)(a + n), tail);
#ifdef MADV_HUGEPAGE
    madvise((void *)a, n, MADV_HUGEPAGE);   /* best effort */
#endif
    return (void *)a;
#else
    (void)n;
    return NULL;
#endif
}

/* Unmap p[keep rounded up to a page .. n); returns the bytes still mapped. keep > 0. */
static inline size_t fk_huge_shrink(void *p, size_t n, size_t keep)
{
#if FK_HAVE_MMAP
    size_t page = (size_t)fk_page_size();
    size_t k = (keep + page - 1) & ~(page - 1);
    if (k < n && munmap((unsigned char *)p + k, n - k) == 0)
        return k;
#else
    (void)p;
    (void)keep;
#endif
    return n;
}

static inline void fk_huge_release(void *p, size_t n)
{
#if FK_HAVE_MMAP
    if (p != NULL && n)
        munmap(p, n);
#else
    (void)p;
    (void)n;
#endif
}

#endif /* FASTKIN_MEM_H */
