/* Clock reads in the units PAR works in (ms, µs) and the conversion to timespec deadlines. */
#include "par/timeutil.h"

static int64_t clock_us(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for these clocks on Linux; a zero keeps arithmetic defined if it ever does. */
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_ms(void)
{
	return clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t time_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

int64_t time_epoch_ms(void)
{
	return clock_us(CLOCK_REALTIME) / 1000;
}

struct timespec time_ms_to_timespec(int64_t ms)
{
	struct timespec ts;
	int64_t sec = ms / 1000, rem = ms % 1000;

	/* tv_nsec must stay in [0, 1e9) for negative values too. */
	if (rem < 0) {
		rem += 1000;
		sec--;
	}
	ts.tv_sec = (time_t)sec;
	ts.tv_nsec = (long)(rem * 1000000);
	return ts;
}

void time_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}
