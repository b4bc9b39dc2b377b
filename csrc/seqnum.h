/*
 * seqnum.h - Kinesis sequence numbers (header-only, plain C, no Python API).
 *
 * A Kinesis sequence number is a decimal string (56 digits for realistic
 * epochs) of a 188-bit integer whose 47 hex nibbles are, most significant
 * first:
 *
 *   2 | createSecs (9) | shard&0xF (1) | seqIndex (16) | 00 (2)
 *     | recordSecs (9) | shardIndex (8) | 2
 *
 * i.e.  value = 2 << 184 | create << 148 | (shard & 0xF) << 144
 *             | seq << 80 | rec << 36 | shard << 4 | 2
 *
 * with create/rec 36-bit, shard 32-bit and seq 64-bit.  Internally the value
 * is held as three little-endian 64-bit limbs l[0] (bits 0..63), l[1]
 * (bits 64..127), l[2] (bits 128..191):
 *
 *   l[0] = 2 | shard << 4 | (rec & 0xFFFFFFF) << 36
 *   l[1] = rec >> 28 (bits 0..7) | 00 (bits 8..15) | (seq & 0xFFFFFFFFFFFF) << 16
 *   l[2] = seq >> 48 (bits 0..15) | (shard & 0xF) << 16 | create << 20 | 2 << 56
 *
 * Decimal conversion works in base 10^19 chunks using unsigned __int128
 * arithmetic (division by the constant 10^19 is done with a precomputed
 * reciprocal, no hardware divide), so gcc or clang (any target with
 * __SIZEOF_INT128__) is required.
 *
 * All functions are static inline, pure, use no mutable globals and are safe
 * to call without the GIL.
 */
#ifndef FASTKIN_SEQNUM_H
#define FASTKIN_SEQNUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef __SIZEOF_INT128__
#error "seqnum.h requires unsigned __int128 (gcc or clang)"
#endif

/* __extension__ keeps -Wpedantic quiet about the non-ISO type. */
__extension__ typedef unsigned __int128 seq_u128;

#define SEQ_MASK36 ((uint64_t)0xFFFFFFFFFu)     /* 36-bit field mask      */
#define SEQ_P19    ((uint64_t)10000000000000000000u) /* 10^19             */
#define SEQ_MAX_PARSE_DIGITS 129                 /* accepted input length */
#define SEQ_MAX_DIGITS 57                        /* 2^188 < 10^57         */

/* Pack the fields into three 64-bit limbs (layout above).  create and rec
   are truncated to their 36-bit field width. */
static inline void seq_pack(uint64_t create_secs, uint32_t shard_index,
                            uint64_t seq_index, uint64_t record_secs,
                            uint64_t l[3])
{
    uint64_t create = create_secs & SEQ_MASK36;
    uint64_t rec = record_secs & SEQ_MASK36;
    uint64_t shard = (uint64_t)shard_index;

    l[0] = (uint64_t)2 | (shard << 4) | (rec << 36);
    l[1] = (rec >> 28) | (seq_index << 16);
    l[2] = (seq_index >> 48) | ((shard & 0xFu) << 16) | (create << 20) |
           ((uint64_t)2 << 56);
}

/*
 * 2-by-1 division by the constant 10^19 without a hardware divide, after
 * Moller & Granlund, "Improved division by invariant integers" (2011),
 * Algorithm 4.  10^19 > 2^63 is already normalised; SEQ_P19_INV is
 * floor((2^128 - 1) / 10^19) - 2^64.  Requires u1 < 10^19; returns the
 * quotient of (u1 * 2^64 + u0) / 10^19 and stores the remainder in *rem.
 */
#define SEQ_P19_INV ((uint64_t)0xd83c94fb6d2ac34au)

static inline uint64_t seq_div_p19(uint64_t u1, uint64_t u0, uint64_t *rem)
{
    seq_u128 p = (seq_u128)SEQ_P19_INV * u1;
    uint64_t q0, q1, r;

    p += ((seq_u128)u1 << 64) | u0;
    q1 = (uint64_t)(p >> 64) + 1u;
    q0 = (uint64_t)p;
    r = u0 - q1 * SEQ_P19;              /* mod 2^64 */
    if (r > q0) {                       /* unlikely to be mispredicted */
        q1--;
        r += SEQ_P19;
    }
    if (r >= SEQ_P19) {                 /* rare */
        q1++;
        r -= SEQ_P19;
    }
    *rem = r;
    return q1;
}

/* l = l / 10^19 (in place), returns l % 10^19.  The running remainder is
   always < 10^19, so each step is a valid 2-by-1 division. */
static inline uint64_t seq_divmod_p19(uint64_t l[3])
{
    uint64_t r;
    l[2] = seq_div_p19(0, l[2], &r);
    l[1] = seq_div_p19(r, l[1], &r);
    l[0] = seq_div_p19(r, l[0], &r);
    return r;
}

/* Two-digit lookup: pairs[2*i], pairs[2*i+1] are the digits of i (0..99). */
static inline const char *seq_digit_pairs(void)
{
    static const char pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    return pairs;
}

/* Write x (< 10^8) as exactly 8 digits at p[0..8).  The two 4-digit halves
   are independent, so the CPU can overlap them. */
static inline void seq_put8(char *p, uint32_t x)
{
    const char *pairs = seq_digit_pairs();
    uint32_t hi = x / 10000u, lo = x % 10000u;
    uint32_t d0 = hi / 100u, d1 = hi % 100u, d2 = lo / 100u, d3 = lo % 100u;
    p[0] = pairs[2 * d0]; p[1] = pairs[2 * d0 + 1];
    p[2] = pairs[2 * d1]; p[3] = pairs[2 * d1 + 1];
    p[4] = pairs[2 * d2]; p[5] = pairs[2 * d2 + 1];
    p[6] = pairs[2 * d3]; p[7] = pairs[2 * d3 + 1];
}

/* Write v (< 10^19) as exactly 19 digits (zero padded) at p[0..19). */
static inline void seq_put19(char *p, uint64_t v)
{
    uint64_t hi = v / 100000000u;             /* < 10^11 */
    uint32_t top = (uint32_t)(hi / 100000000u); /* < 1000 */
    uint32_t mid = (uint32_t)(hi % 100000000u);
    uint32_t low = (uint32_t)(v % 100000000u);
    p[0] = (char)('0' + (int)(top / 100u));
    p[1] = (char)('0' + (int)(top / 10u % 10u));
    p[2] = (char)('0' + (int)(top % 10u));
    seq_put8(p + 3, mid);
    seq_put8(p + 11, low);
}

/* Number of decimal digits of v (v == 0 -> 1). */
static inline int seq_num_digits(uint64_t v)
{
    int n = 1;
    while (v >= 10u) {
        v /= 10u;
        n++;
    }
    return n;
}

/*
 * Format the sequence number for the given fields as decimal digits into
 * out (no leading zeros; a terminating NUL is written at out[len]).  out must
 * have room for 64 chars (at most 57 digits + NUL are written).  Returns the
 * number of digits (56 for realistic epochs).  create_secs and record_secs
 * are truncated to 36 bits.
 */
static inline int seq_format(uint64_t create_secs, uint32_t shard_index,
                             uint64_t seq_index, uint64_t record_secs,
                             char *out)
{
    uint64_t l[3];
    uint64_t c0, c1, c2;
    char tmp[3 * 19];
    int len;

    seq_pack(create_secs, shard_index, seq_index, record_secs, l);

    /* Base-10^19 digits, least significant first.  The value is < 2^188 <
       10^57, so three chunks always suffice; it is never below 10^38
       either (the top nibble 2 alone gives >= 2^185), so c2 != 0. */
    c0 = seq_divmod_p19(l);
    c1 = seq_divmod_p19(l);
    c2 = l[0];                          /* l < 10^19 now: l[1] == l[2] == 0 */

    seq_put19(tmp, c2);
    seq_put19(tmp + 19, c1);
    seq_put19(tmp + 38, c0);
    len = seq_num_digits(c2) + 38;
    memcpy(out, tmp + (57 - len), (size_t)len);
    out[len] = '\0';
    return len;
}

/*
 * Validate and convert 8 ASCII digits p[0..8) (p[0] most significant) with
 * SWAR arithmetic.  The bytes are assembled into a word explicitly (first
 * char in the low byte), so this is byte-order independent; compilers turn
 * the assembly into a single load on little-endian hosts.  Returns the value
 * (< 10^8) or -1 if any byte is not '0'..'9'.
 */
static inline int64_t seq_parse8(const char *p)
{
    uint64_t x = 0;
    int i;
    for (i = 0; i < 8; i++)
        x |= (uint64_t)(unsigned char)p[i] << (8 * i);
    /* every byte 0x30..0x39: high nibble 3, and still 3 after adding 6 */
    if (((x & 0xF0F0F0F0F0F0F0F0u) |
         (((x + 0x0606060606060606u) & 0xF0F0F0F0F0F0F0F0u) >> 4)) !=
        0x3333333333333333u)
        return -1;
    x -= 0x3030303030303030u;
    x = (x * 10u + (x >> 8)) & 0x00FF00FF00FF00FFu;       /* 2-digit lanes */
    x = (x * 100u + (x >> 16)) & 0x0000FFFF0000FFFFu;     /* 4-digit lanes */
    x = (x * 10000u + (x >> 32)) & 0xFFFFFFFFu;           /* 8 digits */
    return (int64_t)x;
}

/*
 * Parse a decimal sequence number s[0..len) (digits only, no sign, no
 * leading zero unless the string is "0", at most 129 digits) into its fields.
 * Returns 0 on success, -1 if the string is not such a decimal, the value
 * needs more than 188 bits, the top nibble is not 2, the low nibble is not 2,
 * the two reserved nibbles are not 00, or the shard&0xF nibble disagrees
 * with the low 4 bits of the 32-bit shard index field.  Outputs are written
 * only on success.  s need not be NUL-terminated.
 */
static inline int seq_parse(const char *s, size_t len, uint64_t *create_secs,
                            uint32_t *shard_index, uint64_t *seq_index,
                            uint64_t *record_secs)
{
    uint64_t l[3] = {0, 0, 0};
    uint64_t shard, nib;
    size_t pos, head;

    if (len == 0 || len > SEQ_MAX_PARSE_DIGITS)
        return -1;
    if (s[0] == '0' && len > 1)
        return -1;                      /* leading zero */
    if (len > SEQ_MAX_DIGITS)
        return -1;                      /* >= 10^57 > 2^188 (or not digits) */

    /* Leading len % 8 digits one at a time, then 8 at a time. */
    head = len % 8u;
    for (pos = 0; pos < head; pos++) {
        if (s[pos] < '0' || s[pos] > '9')
            return -1;
        l[0] = l[0] * 10u + (uint64_t)(unsigned char)(s[pos] - '0');
    }
    for (; pos < len; pos += 8) {
        /* l = l * 10^8 + d; cannot overflow 192 bits since len <= 57. */
        int64_t d = seq_parse8(s + pos);
        seq_u128 t;
        if (d < 0)
            return -1;
        t = (seq_u128)l[0] * 100000000u + (uint64_t)d;
        l[0] = (uint64_t)t;
        t = (seq_u128)l[1] * 100000000u + (uint64_t)(t >> 64);
        l[1] = (uint64_t)t;
        l[2] = l[2] * 100000000u + (uint64_t)(t >> 64);
    }

    if ((l[2] >> 60) != 0)
        return -1;                      /* more than 188 bits */
    if (((l[2] >> 56) & 0xFu) != 2u)
        return -1;                      /* top nibble */
    if ((l[0] & 0xFu) != 2u)
        return -1;                      /* low nibble */
    if (((l[1] >> 8) & 0xFFu) != 0u)
        return -1;                      /* reserved 00 nibbles */

    shard = (l[0] >> 4) & 0xFFFFFFFFu;
    nib = (l[2] >> 16) & 0xFu;
    if (nib != (shard & 0xFu))
        return -1;

    *shard_index = (uint32_t)shard;
    *record_secs = (l[0] >> 36) | ((l[1] & 0xFFu) << 28);
    *seq_index = (l[1] >> 16) | (l[2] << 48);
    *create_secs = (l[2] >> 20) & SEQ_MASK36;
    return 0;
}

#endif /* FASTKIN_SEQNUM_H */
