/* SHA-256 through OpenSSL's EVP, for package verification and safe file names. */
#ifndef PAR_HASH_H
#define PAR_HASH_H

#include <stddef.h>

struct sha256_ctx;

struct sha256_ctx *sha256_new(void);
void sha256_update(struct sha256_ctx *c, const void *data, size_t n);
/* Writes 64 lower-case hex digits and a NUL into hex (≥ 65 bytes) and frees c. */
void sha256_final_hex(struct sha256_ctx *c, char hex[65]);
void sha256_hex(const void *data, size_t n, char hex[65]);
/* Everything readable from fd, streamed; a whole file by path. 0 ok, -1 with errno (hex is
 * then ""). */
int sha256_fd(int fd, char hex[65]);
int sha256_file(const char *path, char hex[65]);

#endif
