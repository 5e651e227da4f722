/* Strict scalar parsers shared by the configuration, URLs, faults and the admin protocol:
 * what an operator typed is either exactly a value or an error, never half-read. */
#include "par/parse.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		unsigned d;
		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	if (out)
		*out = v;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};
	size_t i;

	if (!s)
		return -1;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			if (out)
				*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			if (out)
				*out = false;
			return 0;
		}
	}
	return -1;
}
