/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI (RFC 3720) and ext4 use it.
 *
 * Slicing-by-8: eight 256-entry tables (8 KiB), built once by fk_crc32c_init(); then 8 input bytes per
 * step. fk_crc32c(0, "123456789", 9) == 0xE3069283. The running value is passed in and returned
 * finalised (pre- and post-inverted inside), so crc32c(a + b) == fk_crc32c(fk_crc32c(0, a), b). */
#ifndef FK_CRC32C_H
#define FK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

void fk_crc32c_init(void);
uint32_t fk_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
