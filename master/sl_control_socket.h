/*
 * sl_control_socket.h - the master's end of the control socket (the protocol
 * is in sl_control.h): requests in, answers routed back from the workers.
 */
#ifndef SL_CONTROL_SOCKET_H
#define SL_CONTROL_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/sl_control.h"

struct sl_supervisor;
struct sl_config;
struct sl_sched;

/* control.c: open the socket (creating spool_dir if needed); -1 on error. */
int sl_control_open(const char *spool_dir);
void sl_control_close(int fd, const char *spool_dir);
/* A request is waiting on fd: hand it to an idle worker of generation gen, or
 * answer BUSY; "N <id>" (a new message, no answer) goes to the pickup, "A ..." to the
 * listeners' failed-AUTH table lockout (NULL: no listener). */
struct sl_smtpd_lockout;
void sl_control_accept(int fd, struct sl_supervisor *sup, uint32_t gen, struct sl_sched *sched,
                       struct sl_smtpd_lockout *lockout);
/* A worker's answer "R<id> text": forward it to the client. */
void sl_control_from_worker(int fd, struct sl_supervisor *sup, unsigned worker, const char *msg,
                            size_t len);

#endif
