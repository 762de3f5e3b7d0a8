/*
 * sl_control.h - the control socket's protocol: how sluicectl, inject and the
 * workers talk to the master.
 *
 * The master listens on a unix datagram socket, `control.sock` in spool_dir
 * (mode 0660).  sluicectl sends one request per datagram from an autobound
 * abstract address and waits for the one-datagram answer.  Requests:
 *   "P <binding> <domain> <mx or -> <hold ms>"   probe: reserve, through an
 *        idle worker, every counter a connection from binding to domain (via
 *        mx) takes, hold them for the given time, then release.
 *   "N <id>"   queue/<id> is new (sl_spool_notify); no answer.
 *   "O <verb> [<id>|<id>.<k> ...] [-- <reason>]"   the operator's queue
 *        commands (delete, bounce, hold, release, flush), run by the master
 *        itself; answer "OK <token>=<a|p|n|f> ..." (master/sl_queue_ops.h).
 *   "X suspend <binding|-> <domain|-> <seconds, 0: until resumed> <reason...>"
 *   "X resume <binding|-> <domain|->"   "X cancel <action id>"
 *        shaping actions, kept by the master in spool_dir/actions.
 *   "A list <from>"   the listeners' failed-AUTH counts from table index
 *        <from>: "OK <next>" (0: the table is done) and a line each,
 *        "ADDRESS FAILURES AGE_MS WINDOW_MS" (master/lockouts.c).
 *   "A forget <address>"   that address's counts forgotten (sluicectl unlock).
 * Answers start with a word: OK, REFUSED, BUSY or ERROR, then one line of text
 * (the lines of "A list" excepted).
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

/* The master's pid, beside the socket (sluicectl status and reload). */
#define SL_PIDFILE "sluiced.pid"

/* The control socket's path for this spool directory. */
void sl_control_path(const char *spool_dir, char *buf, size_t len);

#endif
