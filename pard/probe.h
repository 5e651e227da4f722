/* `pard --probe [URL]`: a container health check that needs no curl in the image. */
#ifndef PARD_PROBE_H
#define PARD_PROBE_H

/* GETs url (default http://127.0.0.1:$REST_PORT/health). Returns 0 iff it answered 200
 * within the timeout, 1 otherwise (with a JSON log line saying why). */
int probe_run(const char *url);

#endif
