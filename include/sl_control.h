/*
 * sl_control.h - the master's control socket and the job messages.
 *
 * The master listens on a unix datagram socket, `control.sock` in spool_dir
 * (mode 0660).  sluicectl sends one request per datagram from an autobound
 * abstract address and waits for the one-datagram answer.  Requests:
 *   "P <binding> <domain> <mx or -> <hold ms>"   probe: reserve, through an
 *        idle worker, every counter a connection from binding to domain (via
 *        mx) takes, hold them for the given time, then release.
 *   "N <id>"   queue/<id> is new (sl_spool_notify); no answer.
 * Answers start with a word: OK, REFUSED, BUSY or ERROR, then one line of text.
 * Between master and worker (SOCK_SEQPACKET, sl_worker.h): "J<id> <request>"
 * hands a job over; "R<id> <answer>" is the worker's answer for the client;
 * "I" says the worker is idle again.
 * Trust boundary: requests come from local users allowed by the socket's mode;
 * every field is validated by the worker before use.
 */
#ifndef SL_CONTROL_H
#define SL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_CONTROL_SOCK      "control.sock"
#define SL_CONTROL_MAX       1024 /* bytes in one request or answer */
#define SL_PROBE_HOLD_MAX_MS (24 * 3600 * 1000)

struct sl_supervisor;
struct sl_config;
struct sl_sched;

/* The control socket's path for this spool directory. */
void sl_control_path(const char *spool_dir, char *buf, size_t len);

/* master/control.c: open the socket (creating spool_dir if needed); -1 on error. */
int sl_control_open(const char *spool_dir);
void sl_control_close(int fd, const char *spool_dir);
/* A request is waiting on fd: hand it to an idle worker of generation gen, or
 * answer BUSY; "N <id>" (a new message, no answer) goes to the pickup. */
void sl_control_accept(int fd, struct sl_supervisor *sup, uint32_t gen, struct sl_sched *sched);
/* A worker's answer "R<id> text": forward it to the client. */
void sl_control_from_worker(int fd, struct sl_supervisor *sup, unsigned worker, const char *msg,
                            size_t len);

#endif
