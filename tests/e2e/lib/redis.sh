# redis.sh - start, query and stop a private redis-server for the cluster tests.
# Source it after tap.sh and peer.sh.  The server listens on 127.0.0.1 on a free port, keeps
# its files in $T/redis (no snapshot, no append-only file: a restart comes back empty), and
# is stopped by its PID, never through the system's service.
#
#   redis_start [ARGS...]   start (ARGS go to redis-server, e.g. --requirepass PW); sets and
#                           exports REDIS_PORT (kept across restarts); waits until it answers
#   redis_stop              SIGTERM by PID and wait for the exit
#   redis_kill              SIGKILL by PID (a crash: what it held is gone)
#   redis_pause             SIGSTOP by PID: connections are still accepted, nothing answers
#   redis_resume            SIGCONT: it answers again, with all it held
#   redis_cli ARGS...       redis-cli against it (REDIS_AUTH=PW to authenticate)
_redis_pid=

redis_start() {
  mkdir -p "$T/redis"
  REDIS_PORT=${REDIS_PORT:-$(peer_free_port 127.0.0.1)}
  export REDIS_PORT
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$T/redis" --save '' \
    --appendonly no --daemonize no --logfile "$T/redis/log" "$@" &
  _redis_pid=$!
  started "$_redis_pid"
  wait_for 10 redis_ping || { echo "redis-server did not start" >&2; cat "$T/redis/log" >&2; return 1; }
}
redis_cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ${REDIS_AUTH:+-a "$REDIS_AUTH" --no-auth-warning} "$@"; }
redis_ping() { redis_cli ping 2>/dev/null | grep -Eq 'PONG|NOAUTH'; }
redis_stop() { [ -n "$_redis_pid" ] && kill -TERM "$_redis_pid" && wait "$_redis_pid" 2>/dev/null; _redis_pid=; }
redis_kill() { [ -n "$_redis_pid" ] && kill -KILL "$_redis_pid" && wait "$_redis_pid" 2>/dev/null; _redis_pid=; }
redis_pause() { [ -n "$_redis_pid" ] && kill -STOP "$_redis_pid"; }
redis_resume() { [ -n "$_redis_pid" ] && kill -CONT "$_redis_pid"; }
