/* Runtime fault injection (SPEC §8.3): faults an operator sets and clears through the admin
 * socket (admin_faults in par/admin.h names them), and the hooks the surfaces call. Every
 * set and clear is logged (fault.set / fault.cleared), counted in metrics (par_fault_active
 * gauge per name) and shown by status. Boot faults stay in PAR_FAULTS (par/faults.h). */
#ifndef PARD_RTFAULTS_H
#define PARD_RTFAULTS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "par/metrics.h"

void rtfaults_init(struct metrics *metrics);

/* "fault set": value NULL when the fault takes none; probability in (0,1] (1 when not
 * given). 0 ok; -1 with a sentence in err (unknown name, bad value, value missing). */
int rtfault_set(const char *name, const char *value, double probability, char *err,
		size_t errlen);
/* "fault clear": name NULL clears every runtime fault. 0 ok; -1 unknown/not set. */
int rtfault_clear(const char *name, char *err, size_t errlen);
/* [{"name","value","probability","since"}…] of the active runtime faults: value a number
 * (null when the fault takes none), since in epoch ms; also "injected" (times it acted) and,
 * for hang, "waiting" (threads held now). */
cJSON *rtfaults_active_json(void);
size_t rtfaults_active_count(void);

/* Hooks. Each samples its probability per call. */
bool rtfault_health_failing(void);           /* /health, /ping, gRPC health answer 503/NOT_SERVING */
uint32_t rtfault_rest_delay_ms(void);        /* REST requests (not /livez, /metrics) wait */
unsigned rtfault_rest_error_status(void);    /* 0, or the HTTP status to answer instead */
uint32_t rtfault_a2a_delay_ms(void);         /* A2A calls wait this long */
int rtfault_a2a_error_code(void);            /* 0, or the gRPC status code to answer with */
/* hang: serving threads (REST but /livez and /metrics, A2A handlers) block here while the
 * fault is set. */
void rtfault_hang_point(void);

/* Additions to the interface above (compatible: nothing renamed). */
/* The REST wait: boot_latency_ms (PAR_FAULTS rest.latency) plus rest.latency when it fires.
 * The runtime share ends early when the fault is cleared or pard begins stopping; the
 * PAR_FAULTS share is waited in full, as before. */
void rtfault_rest_delay(uint32_t boot_latency_ms);
/* The A2A wait (a2a.latency when it fires), never past deadline_mono_ms (0: none); ends
 * early on clear or stop like the REST one. */
void rtfault_a2a_delay(int64_t deadline_mono_ms);
/* The lifecycle calls this on every state change: true once pard is draining or stopping,
 * which releases every hang and runtime delay so a drain never waits on a runtime fault. */
void rtfaults_set_stopping(bool stopping);
/* "UNAVAILABLE" for 14: gRPC status names for messages. */
const char *rtfault_grpc_code_name(int code);

#endif
