/* clock: the monotonic clock, for durations, deadlines and back-off (it does
 * not jump when the wall clock is set). */
#ifndef SHARED_CLOCK_H
#define SHARED_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* ms milliseconds as a struct timeval, the form libevent takes timeouts in. */
struct timeval clock_ms_tv(long ms);

#endif
