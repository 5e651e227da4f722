/* libFuzzer target: arbitrary bytes as agent.yaml through the manifest loader (SPEC §3). */
#include "par/manifest.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	if (manifest_load_buffer((const char *)data, size, &m, &p) == 0)
		manifest_free(&m);
	manifest_problems_free(&p);
	return 0;
}
