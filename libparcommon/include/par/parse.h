/* Strict scalar parsers: no sign, no spaces, no trailing garbage, no silent clamping. */
#ifndef PAR_PARSE_H
#define PAR_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Digits only, within [min, max]. 0 ok (*out set when out is not NULL), -1 otherwise. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* true/false/1/0/yes/no/on/off, any case. */
int parse_bool(const char *s, bool *out);

#endif
