/*
 * sl_lockouts.h - the operator's view of the listeners' failed-AUTH table (lockouts.c).
 */
#ifndef SL_LOCKOUTS_H
#define SL_LOCKOUTS_H

#include <stddef.h>

#include "listener/sl_smtpd.h"

/* One "A list FROM" or "A forget ADDRESS" request, its answer into ans (t NULL: no listener,
 * nothing counted). */
void sl_lockouts_control(struct sl_smtpd_lockout *t, const char *req, char *ans, size_t len);

#endif
