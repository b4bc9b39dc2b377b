/*
 * md5.h - MD5 message digest (RFC 1321) for fastkin.
 *
 * Purpose: hashing Kinesis partition keys (typically 10..40 bytes, at most
 * 1024) to the 128-bit hash-key space used for shard routing.
 *
 * The implementation lives in md5.c; list that file in the `sources` of every
 * extension module that needs it.  Both functions are pure C, touch no global
 * or static mutable state and are therefore thread-safe and may be called
 * with the GIL released.
 */
#ifndef FASTKIN_MD5_H
#define FASTKIN_MD5_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Compute the 16-byte MD5 digest of data[0..len) into out. */
void fk_md5(const unsigned char *data, size_t len, unsigned char out[16]);

/*
 * Compute the MD5 digest of data[0..len) and return it as an unsigned
 * big-endian 128-bit integer split into two halves:
 *   *hi = digest bytes 0..7  read big-endian
 *   *lo = digest bytes 8..15 read big-endian
 * i.e. int.from_bytes(md5(data).digest(), "big") == (*hi << 64) | *lo,
 * which is the value Kinesis compares against shard hash-key ranges.
 */
void fk_md5_u128(const unsigned char *data, size_t len,
                 uint64_t *hi, uint64_t *lo);

/*
 * hi[i], lo[i] = fk_md5_u128(p[i], len[i]) for i < n.  Messages shorter than
 * 56 bytes (a single MD5 block: every realistic partition key) are hashed
 * several at a time in lockstep (SIMD lanes), which is 3-6x the throughput
 * of one-at-a-time hashing; longer ones go through fk_md5_u128.
 */
void fk_md5_u128_many(size_t n, const unsigned char *const *p, const size_t *len,
                      uint64_t *hi, uint64_t *lo);

/* Which fk_md5_u128_many path this build and CPU use: 0 = one at a time,
   1 = portable vector lanes (SSE2/NEON), 2 = AVX2 lanes. */
int fk_md5_lanes(void);

#ifdef __cplusplus
}
#endif

#endif /* FASTKIN_MD5_H */
