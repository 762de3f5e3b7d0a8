/*
 * sl_pidfile.h - the master's pid file in spool_dir (SL_PIDFILE, sl_control.h).
 */
#ifndef SL_PIDFILE_H
#define SL_PIDFILE_H

void sl_pidfile_write(const char *spool_dir);
void sl_pidfile_remove(const char *spool_dir);

#endif
