/* SHA-256 over OpenSSL's EVP interface, streamed so packages never need to fit in memory. */
#include "par/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

#define HASH_BUF (256 * 1024)

struct sha256_ctx {
	EVP_MD_CTX *md;
	int failed;	/* an EVP call failed: the digest must not look valid */
};

struct sha256_ctx *sha256_new(void)
{
	struct sha256_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c->md);
		free(c);
		return NULL;
	}
	return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t n)
{
	if (!c || c->failed || n == 0)
		return;
	if (EVP_DigestUpdate(c->md, data, n) != 1)
		c->failed = 1;
}

void sha256_final_hex(struct sha256_ctx *c, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	/* An empty string never equals an expected digest, so a failure cannot verify. */
	hex[0] = '\0';
	if (!c)
		return;
	if (!c->failed && EVP_DigestFinal_ex(c->md, md, &mdlen) == 1 && mdlen == 32) {
		for (i = 0; i < mdlen; i++) {
			hex[2 * i] = digits[md[i] >> 4];
			hex[2 * i + 1] = digits[md[i] & 0xF];
		}
		hex[64] = '\0';
	}
	EVP_MD_CTX_free(c->md);
	free(c);
}

void sha256_hex(const void *data, size_t n, char hex[65])
{
	struct sha256_ctx *c = sha256_new();

	if (!c) {
		hex[0] = '\0';
		return;
	}
	sha256_update(c, data, n);
	sha256_final_hex(c, hex);
}

int sha256_fd(int fd, char hex[65])
{
	struct sha256_ctx *h = sha256_new();
	char *buf = malloc(HASH_BUF);
	int rc = -1;
	hex[0] = '\0';
	if (!h || !buf) {
		errno = ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, HASH_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		sha256_update(h, buf, (size_t)n);
	}
	rc = 0;
out:;
	int e = errno;
	char tmp[65];
	/* Finishing is the only way to free a context; a failed read must not leave a digest. */
	sha256_final_hex(h, rc == 0 ? hex : tmp);
	free(buf);
	errno = e;
	return rc;
}

int sha256_file(const char *path, char hex[65])
{
	hex[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = sha256_fd(fd, hex);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}
