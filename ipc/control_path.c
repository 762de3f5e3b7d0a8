/*
 * control_path.c - where the master's control socket is: spool_dir/control.sock.
 * Every process that talks to the master (sluicectl, inject) finds it here.
 */
#include <stdio.h>

#include "ipc/sl_control.h"

/* sl_control_path - spool_dir/control.sock */
void sl_control_path(const char *spool_dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", spool_dir, SL_CONTROL_SOCK);
}
