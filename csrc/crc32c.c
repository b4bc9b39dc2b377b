/* CRC32C by slicing-by-8 (see crc32c.h). */
#include "crc32c.h"

#include <string.h>

#define FK_CRC32C_POLY 0x82F63B78u

static uint32_t fk_crc_tab[8][256];
static int fk_crc_ready = 0;

void fk_crc32c_init(void)
{
    uint32_t i, j, c;
    if (fk_crc_ready)
        return;
    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++)
            c = (c >> 1) ^ ((c & 1u) ? FK_CRC32C_POLY : 0u);
        fk_crc_tab[0][i] = c;
    }
    /* tab[k][i]: the CRC of byte i followed by k zero bytes */
    for (i = 0; i < 256; i++)
        for (j = 1; j < 8; j++)
            fk_crc_tab[j][i] = (fk_crc_tab[j - 1][i] >> 8) ^ fk_crc_tab[0][fk_crc_tab[j - 1][i] & 0xFFu];
    fk_crc_ready = 1;
}

static inline uint32_t fk_load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint32_t fk_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t c = ~crc, lo, hi;
    while (len && ((uintptr_t)p & 7u)) {            /* align to 8 bytes */
        c = (c >> 8) ^ fk_crc_tab[0][(c ^ *p++) & 0xFFu];
        len--;
    }
    while (len >= 8) {
        lo = fk_load_le32(p) ^ c;
        hi = fk_load_le32(p + 4);
        c = fk_crc_tab[7][lo & 0xFFu] ^ fk_crc_tab[6][(lo >> 8) & 0xFFu] ^
            fk_crc_tab[5][(lo >> 16) & 0xFFu] ^ fk_crc_tab[4][lo >> 24] ^
            fk_crc_tab[3][hi & 0xFFu] ^ fk_crc_tab[2][(hi >> 8) & 0xFFu] ^
            fk_crc_tab[1][(hi >> 16) & 0xFFu] ^ fk_crc_tab[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ fk_crc_tab[0][(c ^ *p++) & 0xFFu];
    return ~c;
}
