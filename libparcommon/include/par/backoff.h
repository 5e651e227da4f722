/* Boot-failure backoff (SPEC §6.4): the delay rule and the counter persisted per agent. */
#ifndef PAR_BACKOFF_H
#define PAR_BACKOFF_H

/* Seconds to sleep before exiting when n consecutive failures preceded this one:
 * 0 for n = 0, then min(60, 2^n): 2, 4, 8, 16, 32, 60, 60, … (no overflow for any n). */
unsigned backoff_delay_sec(unsigned n);

/* The counter file for agent_app_id inside state_dir (malloc'd path). The file name is
 * derived from a hash of the id, so any id is a safe name. */
char *backoff_state_path(const char *state_dir, const char *agent_app_id);

/* Reads the persisted count. A missing file gives 0 and returns 0. A malformed file gives
 * 0 and returns 1 with *warning set to a malloc'd sentence (the caller logs it). An
 * unreadable directory returns -1 with *warning set. */
int backoff_state_read(const char *state_dir, const char *agent_app_id, unsigned *count,
		       char **warning);

/* Writes count atomically (temp file in the same directory, fsync, rename, fsync dir),
 * creating state_dir (mode 0700) if needed. 0 ok, -1 with errno. */
int backoff_state_write(const char *state_dir, const char *agent_app_id, unsigned count);

/* Removes the counter (missing is fine). 0 ok, -1 with errno. */
int backoff_state_clear(const char *state_dir, const char *agent_app_id);

#endif
