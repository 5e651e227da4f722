/* Clocks and small helpers for time arithmetic. */
#ifndef PAR_TIMEUTIL_H
#define PAR_TIMEUTIL_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t time_mono_ms(void);     /* CLOCK_MONOTONIC in ms */
int64_t time_mono_us(void);
int64_t time_epoch_ms(void);    /* CLOCK_REALTIME in ms */
struct timespec time_ms_to_timespec(int64_t ms);
/* pthread_cond_init for a condition whose timed waits take CLOCK_MONOTONIC deadlines (the
 * default clock, CLOCK_REALTIME, jumps with the wall clock). */
void time_cond_init_mono(pthread_cond_t *c);

#endif
