/*
 * test_csrc.c - standalone tests and micro-benchmarks for md5.c / seqnum.h.
 *
 * Build & run:
 *   gcc -O2 -Wall -Wextra -Wconversion -o /tmp/test_csrc test_csrc.c md5.c
 *   /tmp/test_csrc            # self-checks (expected values from hashlib /
 *                             # Python ints embedded below) + timings
 *   /tmp/test_csrc --dump     # print md5 of pattern[:n] for n = 0..1024 and
 *                             # random seq_format samples, one per line, for
 *                             # exhaustive comparison against Python
 *
 * Test pattern: bytes of the LCG x = x*1103515245 + 12345 (mod 2^32), seed
 * 12345, byte = (x >> 16) & 0xFF  (same generator in the Python checker).
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fastkin_debug.h"
#include "md5.h"
#include "seqnum.h"

static int failures = 0;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            failures++;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                           \
            fputc('\n', stderr);                                    \
        }                                                           \
    } while (0)

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char d[16];
    fk_md5((const unsigned char *)data, len, d);
    to_hex(d, 16, out);
}

static void make_pattern(unsigned char *buf, size_t n)
{
    uint32_t x = 12345u;
    size_t i;
    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)((x >> 16) & 0xFFu);
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rng64(void)               /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}

/* CPU time of this process: on a shared machine, time spent descheduled is not counted. */
static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */

static void test_md5(void)
{
    static const struct { const char *msg, *hex; } rfc[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890"
         "1234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    /* hashlib.md5(pattern[:n]).hexdigest() */
    static const struct { size_t n; const char *hex; } pat[] = {
        {20, "f5ab3f5d5bb2d2d8040e6b0188171693"},
        {55, "bb09419b848287c91a532eb1efc8628f"},
        {56, "8b3b8f957492230196b773f3dc29e52a"},
        {63, "0ffbbcff213794129c9133ec2c051894"},
        {64, "9b7de4df9a621b460e55a1bd91d5d128"},
        {65, "df6bf98a0af8fd63ee9bc0e35a6928af"},
        {119, "ec09e89761739f66e40d104cf7750e31"},
        {120, "f287470eb4d8966c5567b716ac5170dd"},
        {128, "645d9d6f199e61ed0fe202746f153699"},
        {1000, "52fa78a219810f0fef8cb0a5f8438372"},
    };
    unsigned char buf[1024 + 8];
    unsigned char cat[1025 * 16];
    char hex[33];
    size_t i, n;

    for (i = 0; i < sizeof rfc / sizeof rfc[0]; i++) {
        md5_hex(rfc[i].msg, strlen(rfc[i].msg), hex);
        CHECK(strcmp(hex, rfc[i].hex) == 0, "md5(\"%s\") = %s, want %s",
              rfc[i].msg, hex, rfc[i].hex);
    }

    make_pattern(buf, 1024);
    for (i = 0; i < sizeof pat / sizeof pat[0]; i++) {
        md5_hex(buf, pat[i].n, hex);
        CHECK(strcmp(hex, pat[i].hex) == 0, "md5(pattern[:%zu]) = %s, want %s",
              pat[i].n, hex, pat[i].hex);
    }

    /* Every length 0..200 at once: md5 of the concatenated 201 digests,
       expected value from hashlib (same for 0..1024). */
    for (n = 0; n <= 200; n++)
        fk_md5(buf, n, cat + 16 * n);
    md5_hex(cat, 201 * 16, hex);
    CHECK(strcmp(hex, "e3e6f62d034898a05892e045381af1d7") == 0,
          "combined md5 of lengths 0..200 = %s", hex);
    for (n = 0; n <= 1024; n++)
        fk_md5(buf, n, cat + 16 * n);
    md5_hex(cat, 1025 * 16, hex);
    CHECK(strcmp(hex, "dea0db86c4a81186644e8e8b0f45e488") == 0,
          "combined md5 of lengths 0..1024 = %s", hex);

    /* Unaligned input must hash identically. */
    for (i = 1; i < 8; i++) {
        unsigned char d1[16], d2[16];
        memmove(buf + i, buf, 200);
        for (n = 0; n <= 200; n += 7) {
            fk_md5(buf + i, n, d1);
            memcpy(cat, buf + i, n);
            fk_md5(cat, n, d2);
            CHECK(memcmp(d1, d2, 16) == 0, "unaligned offset %zu len %zu", i, n);
        }
        memmove(buf, buf + i, 200);
    }

    /* fk_md5_u128 == big-endian reading of fk_md5. */
    for (n = 0; n <= 200; n++) {
        unsigned char d[16];
        uint64_t hi, lo, ehi = 0, elo = 0;
        fk_md5(buf, n, d);
        fk_md5_u128(buf, n, &hi, &lo);
        for (i = 0; i < 8; i++) {
            ehi = (ehi << 8) | d[i];
            elo = (elo << 8) | d[8 + i];
        }
        CHECK(hi == ehi && lo == elo, "fk_md5_u128 mismatch at len %zu", n);
    }
    {   /* fk_md5_u128_many == fk_md5_u128 for every batch size 0..70, mixed lengths 0..120
           (short ones take the lockstep lanes, long ones the scalar path), unaligned starts */
        const unsigned char *ptr[70];
        size_t len[70], m, t;
        uint64_t hi[70], lo[70], ehi, elo;
        for (m = 0; m <= 70; m++) {
            for (t = 0; t < m; t++) {
                ptr[t] = buf + (rng64() % 100);
                len[t] = (t % 5 == 4) ? (size_t)(rng64() % 121) : (size_t)(rng64() % 56);
                hi[t] = lo[t] = 0;
            }
            fk_md5_u128_many(m, ptr, len, hi, lo);
            for (t = 0; t < m; t++) {
                fk_md5_u128(ptr[t], len[t], &ehi, &elo);
                CHECK(hi[t] == ehi && lo[t] == elo, "fk_md5_u128_many batch %zu item %zu len %zu", m, t, len[t]);
            }
        }
        /* every length 0..55 in one batch (lanes), including the boundary 55 */
        for (t = 0; t < 56; t++) {
            ptr[t] = buf + 3;
            len[t] = t;
        }
        fk_md5_u128_many(56, ptr, len, hi, lo);
        for (t = 0; t < 56; t++) {
            fk_md5_u128(ptr[t], len[t], &ehi, &elo);
            CHECK(hi[t] == ehi && lo[t] == elo, "fk_md5_u128_many len %zu", t);
        }
    }
    {   /* int.from_bytes(md5(b"abc").digest(), "big") */
        uint64_t hi, lo;
        fk_md5_u128((const unsigned char *)"abc", 3, &hi, &lo);
        CHECK(hi == 0x900150983cd24fb0u && lo == 0xd6963f7d28e17f72u,
              "fk_md5_u128(abc) = %016llx%016llx", (unsigned long long)hi,
              (unsigned long long)lo);
    }
}

/* ------------------------------------------------------------------------ */

static void test_seqnum(void)
{
    /* Expected strings from Python:
       2<<184 | c<<148 | (s&0xF)<<144 | q<<80 | r<<36 | s<<4 | 2 */
    static const struct {
        uint64_t c; uint32_t s; uint64_t q, r; const char *dec;
    } vec[] = {
        {1700000000u, 0u, 0u, 1700000123u, "49646437577108476416916876405825929425585438128770908162"},
        {1700000000u, 0u, 1u, 1700000123u, "49646437577108476416916876405827138351405052757945614338"},
        {1700000000u, 0u, 9223372036854775807u, 1700000123u, "49646437577119626789516141717395488358902147680349192194"},
        {1700000000u, 0u, 18446744073709551615u, 1700000123u, "49646437577130777162115407028966256218038471861102182402"},
        {1700000000u, 1u, 0u, 1700000123u, "49646437577130777162115407028967465143858086490276888594"},
        {1700000000u, 1u, 1u, 1700000123u, "49646437577130777162115407028968674069677701119451594770"},
        {1700000000u, 1u, 9223372036854775807u, 1700000123u, "49646437577141927534714672340537024077174796041855172626"},
        {1700000000u, 1u, 18446744073709551615u, 1700000123u, "49646437577153077907313937652107791936311120222608162834"},
        {1700000000u, 17u, 0u, 1700000123u, "49646437577130777162115407028967465143858086490276888850"},
        {1700000000u, 17u, 1u, 1700000123u, "49646437577130777162115407028968674069677701119451595026"},
        {1700000000u, 17u, 9223372036854775807u, 1700000123u, "49646437577141927534714672340537024077174796041855172882"},
        {1700000000u, 17u, 18446744073709551615u, 1700000123u, "49646437577153077907313937652107791936311120222608163090"},
        {1700000000u, 4095u, 0u, 1700000123u, "49646437577442987594894835752948965199675163551360679922"},
        {1700000000u, 4095u, 1u, 1700000123u, "49646437577442987594894835752950174125494778180535386098"},
        {1700000000u, 4095u, 9223372036854775807u, 1700000123u, "49646437577454137967494101064518524132991873102938963954"},
        {1700000000u, 4095u, 18446744073709551615u, 1700000123u, "49646437577465288340093366376089291992128197283691954162"},
        /* all fields at maximum */
        {0xFFFFFFFFFu, 0xFFFFFFFFu, 18446744073709551615u, 0xFFFFFFFFFu, "73559785961562665201200657303213636610246346105283411954"},
        /* all fields zero: 2<<184 | 2 */
        {0u, 0u, 0u, 0u, "49039857307708443467467104868809893875799651909875269634"},
    };
    /* Strings seq_parse must reject (base value: c=1700000000, s=5, q=42,
       r=1700000123 = 49646437577219980142909529521584382901372494361638469714). */
    static const char *bad[] = {
        "", "0", "2", "-1", "+4", "0496", "12a4", " 49646437577219980142909529521584382901372494361638469714",
        "74166366231074201876643081955989329839272320316576104530", /* top nibble 3 */
        "49646437577219980142909529521584382901372494361638469715", /* low nibble 3 */
        "49646437577219980142909529521584387623738977231283683410", /* 00 -> 01 */
        "49646437577219980142909529521584987364282301676225822802", /* 00 -> 80 */
        "49646437577242280888108060144725918619645142723144450130", /* shard nibble mismatch */
        "606580269511536675442424652774489025572842451763200082",   /* top nibble 0 */
        "392318858461667547739736838950479151006397215279002157056",/* 2^188 */
        "441965296038887527882646368472063533907769709640640626770",/* 2^188 + valid */
        "4964643757721998014290952952158438290137249436163846971449646437577219980142909529521584382901372494361638469714", /* 112 digits */
    };
    static const char real[] = "49600871682957036442365024926191073437251060580128653314";
    char buf[64], nines[140];
    uint64_t c, q, r;
    uint32_t s;
    size_t i;
    int len, k;

    /* Reciprocal division against the compiler's 128-bit division,
       including edge cases around multiples of 10^19. */
    for (k = 0; k < 2000000; k++) {
        uint64_t u1 = rng64() % SEQ_P19, u0 = rng64(), rem, quo;
        seq_u128 num;
        if (k % 4 == 1) u1 = SEQ_P19 - 1u - (u1 & 0xFF);
        if (k % 4 == 2) u0 = (uint64_t)k;
        if (k % 8 == 3) {               /* multiple of 10^19, then -1/0/+1 */
            num = (seq_u128)((rng64() >> 1) + 1u) * SEQ_P19;
            if (k % 3 == 0) num -= 1u;
            if (k % 3 == 2) num += 1u;
            u1 = (uint64_t)(num >> 64);
            u0 = (uint64_t)num;
            if (u1 >= SEQ_P19) continue;
        }
        num = ((seq_u128)u1 << 64) | u0;
        quo = seq_div_p19(u1, u0, &rem);
        if (quo != (uint64_t)(num / SEQ_P19) || rem != (uint64_t)(num % SEQ_P19)) {
            CHECK(0, "seq_div_p19(%llu, %llu)", (unsigned long long)u1,
                  (unsigned long long)u0);
            break;
        }
    }

    for (i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        memset(buf, 'X', sizeof buf);
        len = seq_format(vec[i].c, vec[i].s, vec[i].q, vec[i].r, buf);
        CHECK(len == (int)strlen(vec[i].dec) && buf[len] == '\0' &&
                  strcmp(buf, vec[i].dec) == 0,
              "seq_format #%zu = %s (len %d), want %s", i, buf, len, vec[i].dec);
        CHECK(seq_parse(vec[i].dec, strlen(vec[i].dec), &c, &s, &q, &r) == 0 &&
                  c == vec[i].c && s == vec[i].s && q == vec[i].q && r == vec[i].r,
              "seq_parse #%zu", i);
    }

    /* Random round trips. */
    for (k = 0; k < 200000; k++) {
        uint64_t c0 = rng64() & SEQ_MASK36, r0 = rng64() & SEQ_MASK36;
        uint64_t q0 = rng64();
        uint32_t s0 = (uint32_t)rng64();
        if (k & 1) q0 >>= (unsigned)(k % 64);        /* mix small values */
        if (k & 2) s0 >>= (unsigned)(k % 32);
        len = seq_format(c0, s0, q0, r0, buf);
        CHECK(len >= 55 && len <= 57 && buf[0] != '0', "random format len %d", len);
        if (seq_parse(buf, (size_t)len, &c, &s, &q, &r) != 0 ||
            c != c0 || s != s0 || q != q0 || r != r0) {
            CHECK(0, "round trip failed for %s", buf);
            break;
        }
    }

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(seq_parse(bad[i], strlen(bad[i]), &c, &s, &q, &r) == -1,
              "seq_parse accepted bad input \"%s\"", bad[i]);
    memset(nines, '9', sizeof nines);
    CHECK(seq_parse(nines, 129, &c, &s, &q, &r) == -1, "129 nines");
    CHECK(seq_parse(nines, 130, &c, &s, &q, &r) == -1, "130 nines");
    /* length is honoured: a valid prefix followed by junk */
    {
        char tmp[80];
        snprintf(tmp, sizeof tmp, "%sZZ", real);
        CHECK(seq_parse(tmp, strlen(real), &c, &s, &q, &r) == 0, "length honoured");
    }

    /* Real AWS sequence number. */
    k = seq_parse(real, strlen(real), &c, &s, &q, &r);
    CHECK(k == 0, "real AWS sequence number rejected");
    if (k == 0) {
        printf("real seq %s\n  create_secs=%llu shard_index=%u seq_index=%llu "
               "record_secs=%llu\n", real, (unsigned long long)c, s,
               (unsigned long long)q, (unsigned long long)r);
        len = seq_format(c, s, q, r, buf);
        CHECK(strcmp(buf, real) == 0 && len == 56, "real re-format %s", buf);
    }
}

/* ------------------------------------------------------------------------ */

static void bench(void)
{
    unsigned char key[20];
    char buf[64];
    volatile uint64_t sink = 0;
    uint64_t acc = 0, hi, lo;
    const long N = 20000000L, M = 10000000L;
    double t0, t1;
    long i;

    memcpy(key, "partitionkey-0000000", 20);
    t0 = now_sec();
    for (i = 0; i < N; i++) {
        key[19] = (unsigned char)i;        /* defeat hoisting */
        key[18] = (unsigned char)(i >> 8);
        fk_md5_u128(key, 20, &hi, &lo);
        acc += hi ^ lo;
    }
    t1 = now_sec();
    sink = acc;
    printf("fk_md5_u128, 20-byte keys: %.2f M hashes/s (%.1f ns/hash)\n",
           (double)N / (t1 - t0) * 1e-6, (t1 - t0) / (double)N * 1e9);

    {
        /* fk_md5_u128_many over 500-key batches of 10..36-byte keys (the put_records pass 1 shape) */
        static unsigned char keys[500][40];
        const unsigned char *ptr[500];
        size_t len[500];
        uint64_t h[500], l[500];
        long r, R = N / 500;
        int k;
        for (k = 0; k < 500; k++) {
            size_t q;
            len[k] = 10 + (size_t)(rng64() % 27);
            for (q = 0; q < len[k]; q++)
                keys[k][q] = (unsigned char)('a' + rng64() % 26);
            ptr[k] = keys[k];
        }
        t0 = now_sec();
        for (r = 0; r < R; r++) {
            keys[r % 500][0] = (unsigned char)r;
            fk_md5_u128_many(500, ptr, len, h, l);
            acc += h[r % 500] ^ l[7];
        }
        t1 = now_sec();
        sink = acc;
        printf("fk_md5_u128_many (lanes path %d), 500 x 10-36 byte keys: %.2f M hashes/s (%.1f ns/hash)\n",
               fk_md5_lanes(), (double)(R * 500) / (t1 - t0) * 1e-6, (t1 - t0) / (double)(R * 500) * 1e9);
    }

    acc = 0;
    t0 = now_sec();
    for (i = 0; i < M; i++) {
        int len = seq_format(1700000000u, (uint32_t)(i & 7), (uint64_t)i,
                             1700000123u + (uint64_t)(i >> 10), buf);
        acc += (uint64_t)len + (uint64_t)(unsigned char)buf[40];
    }
    t1 = now_sec();
    sink = acc;
    printf("seq_format: %.2f M calls/s (%.1f ns/call)\n",
           (double)M / (t1 - t0) * 1e-6, (t1 - t0) / (double)M * 1e9);

    acc = 0;

    {
        uint64_t c = 0, q = 0, r = 0;
        uint32_t s = 0;
        int len = seq_format(1700000000u, 3u, 123456789u, 1700000123u, buf);
        t0 = now_sec();
        for (i = 0; i < M; i++) {
            buf[50] = (char)('0' + (i & 1));   /* may make it invalid: fine */
            acc += (uint64_t)seq_parse(buf, (size_t)len, &c, &s, &q, &r) + q;
        }
        t1 = now_sec();
    }
    sink = acc;
    (void)sink;
    printf("seq_parse: %.2f M calls/s (%.1f ns/call)\n",
           (double)M / (t1 - t0) * 1e-6, (t1 - t0) / (double)M * 1e9);
}

static void dump(void)
{
    unsigned char buf[1024];
    char hex[33], s[64];
    size_t n;
    int k;

    make_pattern(buf, sizeof buf);
    for (n = 0; n <= 1024; n++) {
        uint64_t hi, lo;
        md5_hex(buf, n, hex);
        fk_md5_u128(buf, n, &hi, &lo);
        printf("md5 %zu %s %llu %llu\n", n, hex, (unsigned long long)hi,
               (unsigned long long)lo);
    }
    for (k = 0; k < 2000; k++) {
        uint64_t c = rng64() & SEQ_MASK36, r = rng64() & SEQ_MASK36;
        uint64_t q = rng64() >> (unsigned)(k % 64);
        uint32_t sh = (uint32_t)(rng64() >> (unsigned)(32 + k % 32));
        seq_format(c, sh, q, r, s);
        printf("seq %llu %u %llu %llu %s\n", (unsigned long long)c, sh,
               (unsigned long long)q, (unsigned long long)r, s);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dump") == 0) {
        dump();
        return 0;
    }
    test_md5();
    test_seqnum();
    if (failures) {
        printf("%d FAILURE(S)\n", failures);
        return 1;
    }
    printf("all tests passed (FASTKIN_DEBUG=%d)\n", FASTKIN_DEBUG);
    if (!(argc > 1 && strcmp(argv[1], "--no-bench") == 0))
        bench();
    return 0;
}
