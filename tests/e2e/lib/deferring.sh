# deferring.sh - the config of the tests whose mail never leaves: every attempt defers at once
# (its route is a closed port) and is not tried again within the test.
# Source it after tap.sh.
#
#   deferring_config DELIVERY_LOG DOMAIN...
#       Write $T/sluice.ini: one worker, shm_name $shm, spool_dir $T/spool, the delivery log
#       at DELIVERY_LOG, retry_interval = 1h; binding b1 on 127.0.0.2; each DOMAIN routed to
#       127.0.1.31:9, where nothing listens.

deferring_config() {
  local log=$1 d; shift
  cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $log
retry_interval = 1h

[binding "b1"]
bind_address = 127.0.0.2
INI
  for d in "$@"; do printf '\n[domain "%s"]\nroute = 127.0.1.31:9\n' "$d" >>"$T/sluice.ini"; done
}
