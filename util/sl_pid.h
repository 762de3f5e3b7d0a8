/*
 * sl_pid.h - this process's pid, without a system call each time.
 *
 * The spool's writers ask "am I still the process that set this up?" several times per
 * message (a child forked after the setup must make its own descriptors and entries);
 * getpid() is a system call each time, sl_pid() a load.
 */
#ifndef SL_PID_H
#define SL_PID_H

#include <sys/types.h>

/* This process's pid: read once, read again in the child of every fork(). */
pid_t sl_pid(void);

#endif
