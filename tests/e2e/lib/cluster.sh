# cluster.sh - three sluiced nodes on one machine sharing one Redis, for the cluster tests.
# Source it after tap.sh: it sources dns.sh, peer.sh and redis.sh, which its nodes use.
# Node N (1..3) has its own spool ($T/spoolN), shared-memory name, delivery log and config
# ($T/nodeN.ini), and its bindings' source addresses on 127.0.0.x of its own:
#   binding b (in group g)  127.0.0.(1+N)   binding s  127.0.0.(4+N)   binding c  127.0.0.(7+N)
# The config is the text of $T/common.ini (written by the test: the cluster limits and
# the [global] settings they share) under each node's own [global] lines; NODE_BINDING_S
# adds lines to [binding "s"].
#
#   node_config N [EXTRA]   write $T/nodeN.ini (EXTRA: more [global] lines)
#   node_start N            start sluiced -c $T/nodeN.ini; NODE_PID[N]
#   node_stop N             SIGTERM and wait;  node_kill N: SIGKILL of the master (its
#                           workers die with it)
#   node_inject N COUNT BINDING DOMAIN   COUNT messages through node N
#   node_ctl N ARGS...      sluicectl -c $T/nodeN.ini ARGS
_cluster_lib=$(dirname "${BASH_SOURCE[0]}")
. "$_cluster_lib/dns.sh"
. "$_cluster_lib/peer.sh"
. "$_cluster_lib/redis.sh"
declare -A NODE_PID=()

node_config() {
  local n=$1 extra=${2:-}
  cat >"$T/node$n.ini" <<INI
[global]
workers = ${NODE_WORKERS:-12}
shm_name = /sluice-e2e-cluster-$$-$n
spool_dir = $T/spool$n
delivery_log = $T/delivery$n.log
dns_server = $DNS_SERVER
audit_interval = 1s
idle_timeout = 1s
retry_interval = 1h
cluster_node = node$n
$extra
$(cat "$T/common.ini")

[binding_group "g"]

[binding "b"]
binding_group = g
bind_address = 127.0.0.$((1 + n))

[binding "s"]
bind_address = 127.0.0.$((4 + n))
${NODE_BINDING_S:-}

[binding "c"]
bind_address = 127.0.0.$((7 + n))
INI
}

node_start() {
  local n=$1
  "$SLUICED" -c "$T/node$n.ini" 2>>"$T/daemon$n.log" &
  NODE_PID[$n]=$!
  started "${NODE_PID[$n]}"
}

node_stop() {
  local n=$1
  kill -TERM "${NODE_PID[$n]}" 2>/dev/null
  wait "${NODE_PID[$n]}" 2>/dev/null
}

node_kill() {
  kill -KILL "${NODE_PID[$1]}" 2>/dev/null
  wait "${NODE_PID[$1]}" 2>/dev/null
}

node_ctl() { local n=$1; shift; "$SLUICECTL" -c "$T/node$n.ini" "$@"; }

node_inject() {
  local n=$1 count=$2 b=$3 dom=$4
  seq "$count" | xargs -P 8 -I{} sh -c "printf 'Subject: {}\r\n\r\nbody {}\r\n' |
    '$SLUICECTL' -c '$T/node$n.ini' inject --binding $b -f s@sender.test u{}-$n@$dom >/dev/null"
}

node_queued() { ls "$T/spool$1/queue" 2>/dev/null | wc -l; }
node_drained() { [ "$(node_queued "$1")" -eq 0 ]; }
all_drained() { [ "$(node_queued 1)" -eq 0 ] && [ "$(node_queued 2)" -eq 0 ] && [ "$(node_queued 3)" -eq 0 ]; }
