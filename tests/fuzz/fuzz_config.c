/* libFuzzer target: arbitrary bytes as the environment of the configuration loader (SPEC §2),
 * one NAME=value entry per line, then the loaded configuration as JSON. */
#include "par/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* One copy holds every entry: each '\n' becomes the NUL that ends one (a NUL inside a
	 * line just ends it early, as it would in a real environment). */
	char *text = malloc(size + 1);
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	char **env = calloc(lines + 1, sizeof *env);
	if (!text || !env) {
		free(text);
		free(env);
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	size_t n = 0;
	env[n++] = text;
	for (size_t i = 0; i < size; i++)
		if (text[i] == '\n') {
			text[i] = '\0';
			env[n++] = text + i + 1;
		}
	env[n] = NULL;

	struct par_config cfg;
	struct cfg_issues errors = {0}, warnings = {0};
	/* Whatever the verdict, cfg holds values or defaults and must print and free cleanly. */
	cfg_load(&cfg, env, &errors, &warnings);
	free(cfg_to_json(&cfg));
	cfg_free(&cfg);
	cfg_issues_free(&errors);
	cfg_issues_free(&warnings);

	/* The BASE_PATH rule on its own, the first line as the value. */
	const char *rule = NULL;
	char *base = cfg_normalise_base_path(env[0], &rule);
	if (base && (strstr(base, "//") || (base[0] && base[0] != '/')))
		abort(); /* the rule promises a normalised path */
	free(base);

	free(env);
	free(text);
	return 0;
}
