/* `parctl validate FILE|DIR [--sha256 HEX] [--max-extract-mb MB]`: the offline package check agent authors run
 * before uploading — archive rules and manifest, every problem reported. */
#ifndef PARCTL_VALIDATE_H
#define PARCTL_VALIDATE_H

#include <stdbool.h>

/* argv[0] is "validate". Returns the parctl exit code (0 valid, 1 problems, 2 usage). */
int validate_main(int argc, char **argv, bool json);

#endif
