/*
 * md5.c - MD5 message digest (RFC 1321), tuned for short inputs.
 *
 * Layout:
 *   - word load helper (memcpy on little-endian hosts, byte assembly
 *     elsewhere; never an unaligned pointer cast, no strict-aliasing issues)
 *   - md5_compress(): one fully unrolled 64-step block transform
 *   - md5_state():    whole-message driver; inputs shorter than 56 bytes take
 *                     a single-block fast path (one padded block on the stack)
 *   - fk_md5() / fk_md5_u128(): public API (see md5.h)
 *   - fk_md5_u128_many(): many messages; the short ones (< 56 bytes, one
 *     block) are hashed FK_LANES at a time in lockstep with GCC/clang vector
 *     extensions (md5_lanes.inc), with an AVX2 variant picked at run time on
 *     x86-64; other compilers fall back to one message at a time.
 *
 * No global or static mutable state: safe to call concurrently and without
 * the Python GIL.
 */
#include <string.h>

#include "md5.h"

/* ------------------------------------------------------------------------ */
/* Byte order                                                               */
/* ------------------------------------------------------------------------ */

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#define FK_MD5_LITTLE_ENDIAN 1
#elif defined(_MSC_VER) && (defined(_M_IX86) || defined(_M_X64) || \
                            defined(_M_ARM64) || defined(_M_ARM))
#define FK_MD5_LITTLE_ENDIAN 1
#else
#define FK_MD5_LITTLE_ENDIAN 0
#endif

/* Load a 32-bit little-endian word from an arbitrary (unaligned) address. */
static inline uint32_t fk_load_le32(const unsigned char *p)
{
#if FK_MD5_LITTLE_ENDIAN
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
           ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
#endif
}

/* Store a 32-bit word little-endian (byte-wise: portable, no aliasing). */
static inline void fk_store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v);
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Byte-reverse a 32-bit word (compilers turn this into a bswap insn). */
static inline uint32_t fk_bswap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0x0000FF00u) |
           ((v << 8) & 0x00FF0000u) | (v << 24);
}

/* ------------------------------------------------------------------------ */
/* Block transform                                                          */
/* ------------------------------------------------------------------------ */

/* Auxiliary functions (RFC 1321 3.4), in their cheaper equivalent forms. */
#define FK_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define FK_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define FK_H(x, y, z) ((x) ^ (y) ^ (z))
#define FK_I(x, y, z) ((y) ^ ((x) | ~(z)))

#define FK_ROTL(v, s) (((v) << (s)) | ((v) >> (32 - (s))))

/* a = b + ((a + f(b,c,d) + X[k] + T) <<< s).  a + X[k] + T does not depend
   on the previous step's result, so it is added first to keep it off the
   critical dependency chain (b -> f -> rotate -> next b). */
#define FK_STEP(f, a, b, c, d, xk, t, s)                  \
    do {                                                  \
        (a) += (xk) + (uint32_t)(t);                      \
        (a) += f((b), (c), (d));                          \
        (a) = FK_ROTL((a), (s));                          \
        (a) += (b);                                       \
    } while (0)

/* Process one 64-byte block, updating st[0..3]. */
static void md5_compress(uint32_t st[4], const unsigned char block[64])
{
    uint32_t X[16];
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    int i;

    for (i = 0; i < 16; i++)
        X[i] = fk_load_le32(block + 4 * i);

    /* Round 1 */
    FK_STEP(FK_F, a, b, c, d, X[ 0], 0xd76aa478u,  7);
    FK_STEP(FK_F, d, a, b, c, X[ 1], 0xe8c7b756u, 12);
    FK_STEP(FK_F, c, d, a, b, X[ 2], 0x242070dbu, 17);
    FK_STEP(FK_F, b, c, d, a, X[ 3], 0xc1bdceeeu, 22);
    FK_STEP(FK_F, a, b, c, d, X[ 4], 0xf57c0fafu,  7);
    FK_STEP(FK_F, d, a, b, c, X[ 5], 0x4787c62au, 12);
    FK_STEP(FK_F, c, d, a, b, X[ 6], 0xa8304613u, 17);
    FK_STEP(FK_F, b, c, d, a, X[ 7], 0xfd469501u, 22);
    FK_STEP(FK_F, a, b, c, d, X[ 8], 0x698098d8u,  7);
    FK_STEP(FK_F, d, a, b, c, X[ 9], 0x8b44f7afu, 12);
    FK_STEP(FK_F, c, d, a, b, X[10], 0xffff5bb1u, 17);
    FK_STEP(FK_F, b, c, d, a, X[11], 0x895cd7beu, 22);
    FK_STEP(FK_F, a, b, c, d, X[12], 0x6b901122u,  7);
    FK_STEP(FK_F, d, a, b, c, X[13], 0xfd987193u, 12);
    FK_STEP(FK_F, c, d, a, b, X[14], 0xa679438eu, 17);
    FK_STEP(FK_F, b, c, d, a, X[15], 0x49b40821u, 22);

    /* Round 2 */
    FK_STEP(FK_G, a, b, c, d, X[ 1], 0xf61e2562u,  5);
    FK_STEP(FK_G, d, a, b, c, X[ 6], 0xc040b340u,  9);
    FK_STEP(FK_G, c, d, a, b, X[11], 0x265e5a51u, 14);
    FK_STEP(FK_G, b, c, d, a, X[ 0], 0xe9b6c7aau, 20);
    FK_STEP(FK_G, a, b, c, d, X[ 5], 0xd62f105du,  5);
    FK_STEP(FK_G, d, a, b, c, X[10], 0x02441453u,  9);
    FK_STEP(FK_G, c, d, a, b, X[15], 0xd8a1e681u, 14);
    FK_STEP(FK_G, b, c, d, a, X[ 4], 0xe7d3fbc8u, 20);
    FK_STEP(FK_G, a, b, c, d, X[ 9], 0x21e1cde6u,  5);
    FK_STEP(FK_G, d, a, b, c, X[14], 0xc33707d6u,  9);
    FK_STEP(FK_G, c, d, a, b, X[ 3], 0xf4d50d87u, 14);
    FK_STEP(FK_G, b, c, d, a, X[ 8], 0x455a14edu, 20);
    FK_STEP(FK_G, a, b, c, d, X[13], 0xa9e3e905u,  5);
    FK_STEP(FK_G, d, a, b, c, X[ 2], 0xfcefa3f8u,  9);
    FK_STEP(FK_G, c, d, a, b, X[ 7], 0x676f02d9u, 14);
    FK_STEP(FK_G, b, c, d, a, X[12], 0x8d2a4c8au, 20);

    /* Round 3 */
    FK_STEP(FK_H, a, b, c, d, X[ 5], 0xfffa3942u,  4);
    FK_STEP(FK_H, d, a, b, c, X[ 8], 0x8771f681u, 11);
    FK_STEP(FK_H, c, d, a, b, X[11], 0x6d9d6122u, 16);
    FK_STEP(FK_H, b, c, d, a, X[14], 0xfde5380cu, 23);
    FK_STEP(FK_H, a, b, c, d, X[ 1], 0xa4beea44u,  4);
    FK_STEP(FK_H, d, a, b, c, X[ 4], 0x4bdecfa9u, 11);
    FK_STEP(FK_H, c, d, a, b, X[ 7], 0xf6bb4b60u, 16);
    FK_STEP(FK_H, b, c, d, a, X[10], 0xbebfbc70u, 23);
    FK_STEP(FK_H, a, b, c, d, X[13], 0x289b7ec6u,  4);
    FK_STEP(FK_H, d, a, b, c, X[ 0], 0xeaa127fau, 11);
    FK_STEP(FK_H, c, d, a, b, X[ 3], 0xd4ef3085u, 16);
    FK_STEP(FK_H, b, c, d, a, X[ 6], 0x04881d05u, 23);
    FK_STEP(FK_H, a, b, c, d, X[ 9], 0xd9d4d039u,  4);
    FK_STEP(FK_H, d, a, b, c, X[12], 0xe6db99e5u, 11);
    FK_STEP(FK_H, c, d, a, b, X[15], 0x1fa27cf8u, 16);
    FK_STEP(FK_H, b, c, d, a, X[ 2], 0xc4ac5665u, 23);

    /* Round 4 */
    FK_STEP(FK_I, a, b, c, d, X[ 0], 0xf4292244u,  6);
    FK_STEP(FK_I, d, a, b, c, X[ 7], 0x432aff97u, 10);
    FK_STEP(FK_I, c, d, a, b, X[14], 0xab9423a7u, 15);
    FK_STEP(FK_I, b, c, d, a, X[ 5], 0xfc93a039u, 21);
    FK_STEP(FK_I, a, b, c, d, X[12], 0x655b59c3u,  6);
    FK_STEP(FK_I, d, a, b, c, X[ 3], 0x8f0ccc92u, 10);
    FK_STEP(FK_I, c, d, a, b, X[10], 0xffeff47du, 15);
    FK_STEP(FK_I, b, c, d, a, X[ 1], 0x85845dd1u, 21);
    FK_STEP(FK_I, a, b, c, d, X[ 8], 0x6fa87e4fu,  6);
    FK_STEP(FK_I, d, a, b, c, X[15], 0xfe2ce6e0u, 10);
    FK_STEP(FK_I, c, d, a, b, X[ 6], 0xa3014314u, 15);
    FK_STEP(FK_I, b, c, d, a, X[13], 0x4e0811a1u, 21);
    FK_STEP(FK_I, a, b, c, d, X[ 4], 0xf7537e82u,  6);
    FK_STEP(FK_I, d, a, b, c, X[11], 0xbd3af235u, 10);
    FK_STEP(FK_I, c, d, a, b, X[ 2], 0x2ad7d2bbu, 15);
    FK_STEP(FK_I, b, c, d, a, X[ 9], 0xeb86d391u, 21);

    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
}

/* ------------------------------------------------------------------------ */
/* Message driver                                                           */
/* ------------------------------------------------------------------------ */

/* Write the 64-bit message bit length little-endian at p[0..8). */
static inline void md5_put_bitlen(unsigned char *p, size_t len)
{
    uint64_t bits = (uint64_t)len << 3;
    fk_store_le32(p, (uint32_t)bits);
    fk_store_le32(p + 4, (uint32_t)(bits >> 32));
}

/* Hash data[0..len) leaving the four final state words in st. */
static void md5_state(const unsigned char *data, size_t len, uint32_t st[4])
{
    unsigned char block[64];
    size_t rem;

    st[0] = 0x67452301u;
    st[1] = 0xefcdab89u;
    st[2] = 0x98badcfeu;
    st[3] = 0x10325476u;

    if (len < 56) {
        /* Fast path: message + 0x80 + zero fill + length fit in one block. */
        if (len)
            memcpy(block, data, len);
        block[len] = 0x80;
        memset(block + len + 1, 0, 55 - len);
        md5_put_bitlen(block + 56, len);
        md5_compress(st, block);
        return;
    }

    /* Whole blocks straight from the input, no copying. */
    rem = len;
    while (rem >= 64) {
        md5_compress(st, data);
        data += 64;
        rem -= 64;
    }

    /* Tail: rem in [0, 64) bytes, then padding in one or two blocks. */
    if (rem)
        memcpy(block, data, rem);
    block[rem] = 0x80;
    if (rem < 56) {
        memset(block + rem + 1, 0, 55 - rem);
    } else {
        memset(block + rem + 1, 0, 63 - rem);
        md5_compress(st, block);
        memset(block, 0, 56);
    }
    md5_put_bitlen(block + 56, len);
    md5_compress(st, block);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

void fk_md5(const unsigned char *data, size_t len, unsigned char out[16])
{
    uint32_t st[4];
    md5_state(data, len, st);
    fk_store_le32(out, st[0]);
    fk_store_le32(out + 4, st[1]);
    fk_store_le32(out + 8, st[2]);
    fk_store_le32(out + 12, st[3]);
}

void fk_md5_u128(const unsigned char *data, size_t len,
                 uint64_t *hi, uint64_t *lo)
{
    uint32_t st[4];
    md5_state(data, len, st);
    /* Digest bytes are the state words little-endian; reading them back
       big-endian is a per-word byte swap. */
    *hi = ((uint64_t)fk_bswap32(st[0]) << 32) | fk_bswap32(st[1]);
    *lo = ((uint64_t)fk_bswap32(st[2]) << 32) | fk_bswap32(st[3]);
}

/* ------------------------------------------------------------------------ */
/* Many messages: lockstep lanes for short ones                             */
/* ------------------------------------------------------------------------ */

#if (defined(__GNUC__) || defined(__clang__)) && !defined(FK_MD5_NO_LANES)
#define FK_MD5_HAVE_LANES 1

/* Portable variant: SSE2 on any x86-64, NEON on aarch64 (16 lanes = 4 registers, enough
   independent chains to cover the per-step latency). */
#define FK_LN 16
#define FK_VT fk_v16u
#define FK_FN md5_lanes_generic
#define FK_ATTR
#include "md5_lanes.inc"
#undef FK_LN
#undef FK_VT
#undef FK_FN
#undef FK_ATTR

#if defined(__x86_64__) && !defined(__AVX2__) && (defined(__clang__) || __GNUC__ >= 5)
#define FK_MD5_AVX2_DISPATCH 1
#define FK_LN 16
#define FK_VT fk_v16u_avx2
#define FK_FN md5_lanes_avx2
#define FK_ATTR __attribute__((target("avx2")))
#include "md5_lanes.inc"
#undef FK_LN
#undef FK_VT
#undef FK_FN
#undef FK_ATTR
#endif

#define FK_LANES 16

static void md5_lanes(const unsigned char *const *p, const size_t *len, const size_t *idx,
                      uint64_t *hi, uint64_t *lo)
{
#ifdef FK_MD5_AVX2_DISPATCH
    /* __builtin_cpu_supports reads a table filled by libgcc/compiler-rt at load time. */
    if (__builtin_cpu_supports("avx2")) {
        md5_lanes_avx2(p, len, idx, hi, lo);
        return;
    }
#endif
    md5_lanes_generic(p, len, idx, hi, lo);
}

int fk_md5_lanes(void)
{
#ifdef FK_MD5_AVX2_DISPATCH
    return __builtin_cpu_supports("avx2") ? 2 : 1;
#else
    return 1;
#endif
}
#else
int fk_md5_lanes(void)
{
    return 0;
}
#endif

void fk_md5_u128_many(size_t n, const unsigned char *const *p, const size_t *len,
                      uint64_t *hi, uint64_t *lo)
{
    size_t i;
#ifdef FK_MD5_HAVE_LANES
    size_t idx[FK_LANES];
    size_t m = 0, j;

    for (i = 0; i < n; i++) {
        if (len[i] < 56) {
            idx[m++] = i;
            if (m == FK_LANES) {
                md5_lanes(p, len, idx, hi, lo);
                m = 0;
            }
        } else {
            fk_md5_u128(p[i], len[i], &hi[i], &lo[i]);
        }
    }
    if (m >= FK_LANES / 4) {
        /* Fill the spare lanes with the last message again: same input, same output. */
        for (j = m; j < FK_LANES; j++)
            idx[j] = idx[m - 1];
        md5_lanes(p, len, idx, hi, lo);
    } else {
        for (j = 0; j < m; j++)
            fk_md5_u128(p[idx[j]], len[idx[j]], &hi[idx[j]], &lo[idx[j]]);
    }
#else
    for (i = 0; i < n; i++)
        fk_md5_u128(p[i], len[i], &hi[i], &lo[i]);
#endif
}
