/*
 * sl_notify.h - tell systemd where the daemon stands (Type=notify); nothing
 * happens without $NOTIFY_SOCKET.
 */
#ifndef SL_NOTIFY_H
#define SL_NOTIFY_H

void sl_notify_ready(const char *status);
void sl_notify_reloading(void);
void sl_notify_stopping(void);
void sl_notify_status(const char *status);

#endif
