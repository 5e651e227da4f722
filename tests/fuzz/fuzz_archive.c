/* libFuzzer target: arbitrary bytes as an agent package through the archive validator (the
 * raw zip structure scan, libarchive's zip reader, every entry rule) and arch_read_file. */
#include "par/archive.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* arch_read_file takes a path: a memfd gives one without touching the disk. */
static void fuzz_read_file(const uint8_t *data, size_t size)
{
	char path[64], *out = NULL;
	size_t len;
	int fd = memfd_create("fuzz_archive", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (arch_read_file(path, "agent.yaml", 64 * 1024, &out, &len) == 0)
			free(out);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Small caps keep each input fast; the rules are the same at any size. */
	const struct arch_limits lim = {
		.max_entries = 64,
		.max_total_bytes = 1 << 20,
		.max_ratio = 100,
		.max_name = 255,
	};
	struct arch_problems p = { 0 };

	arch_validate_buffer(data, size, &lim, &p);
	arch_problems_free(&p);
	fuzz_read_file(data, size);
	return 0;
}
