# peer.sh - start, script, query and stop the scripted SMTP sink (tests/peer/sink.py).
# Source it after tap.sh.  Each sink has a NAME ([A-Za-z0-9_]+) and a directory $T/peer.NAME
# holding script.json, stats.json, maildir/ (one file per accepted message: an envelope JSON
# line, then the un-dot-stuffed DATA), out and err.  The script format and the stats fields
# are described at the top of sink.py.
#
#   peer_start NAME SCRIPT_JSON ADDR...
#       Start a sink listening on every ADDR (127.0.1.x) on one port free on all of them; wait
#       for it to be ready (10 s).  Sets and exports PEER_PORT (of the latest start).  SCRIPT_JSON
#       is the script text ('{}' for a well-behaved peer).  PEER_MAILDIR=0 keeps no messages
#       (benchmarks); PEER_ARGS adds sink options (e.g. "--tls-cert C --tls-key K").
#   peer_port NAME               the sink's port
#   peer_dir NAME                its directory (maildir: "$(peer_dir NAME)/maildir")
#   peer_pid NAME                its process id (e.g. to read its CPU time)
#   peer_stat NAME PYTHON_EXPR   print the expression evaluated over the stats file; names:
#       d (the whole JSON), total, pair(SRC, DST), dest(DST), source(SRC) (each a dict of
#       counts, zeros when never seen: sessions peak connections messages recipients
#       max_per_connection transactions rcpt_rejected rejected dropped tls), events, errors
#       (protocol_errors), messages() (the stored messages as (envelope dict, body bytes),
#       in arrival order); with PEER_ARGS=--timeline, opened_since(T) (the sessions accepted
#       after epoch T) and crowded(T) (those of them accepted while another session was open).
#       Strings print as they are, anything else as JSON.
#       e.g. peer_stat mx "pair('127.0.0.2', '127.0.1.1')['peak']"
#   peer_true NAME PYTHON_EXPR   exit 0 when the expression is true (for check / wait_for)
#   peer_script NAME SCRIPT_JSON replace the script and SIGHUP the sink; returns once it has
#       loaded the new one (1 if the sink rejected it: it then keeps the old one)
#   peer_stop NAME               SIGTERM; wait until it has written its final stats and exited
#   peer_free_port ADDR...       print a TCP port free right now on every ADDR (for other
#       servers a test starts, e.g. postfix_start; the sink picks its own)
# The stats file is rewritten every 100 ms while it changes, so poll with wait_for.

_peer_sink=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../peer" && pwd)/sink.py
declare -A _peer_pid=() _peer_port=()

peer_dir() { echo "$T/peer.$1"; }
peer_port() { echo "${_peer_port[$1]}"; }
peer_pid() { echo "${_peer_pid[$1]}"; }

peer_start() {
  local name=$1 script=$2 d a pid; shift 2
  d=$(peer_dir "$name")
  mkdir -p "$d"
  printf '%s\n' "$script" >"$d/script.json"
  local args=(--script "$d/script.json" --stats "$d/stats.json")
  [ "${PEER_MAILDIR:-1}" = 0 ] || args+=(--maildir "$d/maildir")
  for a in "$@"; do args+=(--listen "$a:0"); done
  # shellcheck disable=SC2206 # PEER_ARGS is split on purpose
  args+=(${PEER_ARGS:-})
  : >"$d/out"
  python3 "$_peer_sink" "${args[@]}" >"$d/out" 2>"$d/err" &
  pid=$!
  started "$pid"
  _peer_pid[$name]=$pid
  if ! wait_for 10 grep -q '^READY' "$d/out"; then
    echo "peer $name did not start:" >&2; cat "$d/err" >&2
    return 1
  fi
  _peer_port[$name]=$(sed -n 's/^READY port=//p' "$d/out")
  export PEER_PORT=${_peer_port[$name]}
}

peer_stat() {
  python3 - "$(peer_dir "$1")" "$2" <<'PY'
import json, os, sys
base, expr = sys.argv[1], sys.argv[2]
with open(os.path.join(base, "stats.json")) as f:
    d = json.load(f)
zero = dict.fromkeys(d["total"], 0)
total, events, errors = d["total"], d["events"], d["protocol_errors"]
pair = lambda s, t: d["pairs"].get(f"{s}>{t}", zero)
dest = lambda t: d["by_dest"].get(t, zero)
source = lambda s: d["by_source"].get(s, zero)

def opened_since(t0):
    return [n for n, t in d.get("timeline", {}).items() if t["events"][0][1] > t0]

def crowded(t0):
    def ended(t):
        return min((e[1] for e in t["events"] if e[0] in ("gone", "closed")), default=1e18)
    tl = d.get("timeline", {})
    return [n for n in opened_since(t0)
            if any(m != n and u["events"][0][1] < tl[n]["events"][0][1] < ended(u)
                   for m, u in tl.items())]

def messages():
    out, md = [], os.path.join(base, "maildir")
    for name in sorted(os.listdir(md)) if os.path.isdir(md) else []:
        if name.endswith(".msg"):
            with open(os.path.join(md, name), "rb") as f:
                env, _, body = f.read().partition(b"\n")
            out.append((json.loads(env), body))
    return out

v = eval(expr)
print(v if isinstance(v, str) else json.dumps(v, default=repr))
PY
}

peer_true() { test "$(peer_stat "$1" "bool($2)")" = true; }

peer_script() {
  local name=$1 d loads errors
  d=$(peer_dir "$name")
  loads=$(peer_stat "$name" "d['script_loads']")
  errors=$(peer_stat "$name" "d['script_errors']")
  printf '%s\n' "$2" >"$d/script.json.new" && mv "$d/script.json.new" "$d/script.json"
  kill -HUP "${_peer_pid[$name]}"
  wait_for 5 peer_true "$name" "d['script_loads'] > $loads or d['script_errors'] > $errors" &&
    peer_true "$name" "d['script_loads'] > $loads"
}

peer_stop() {
  local pid=${_peer_pid[$1]:-}
  [ -n "$pid" ] || return 1
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "_peer_pid[$1]"
  return 0
}

peer_free_port() {
  python3 - "$@" <<'PY'
import socket, sys
for _ in range(100):
    probe = socket.socket()
    probe.bind((sys.argv[1], 0))
    port = probe.getsockname()[1]
    socks = [probe]
    try:
        for a in sys.argv[2:]:
            s = socket.socket()
            socks.append(s)
            s.bind((a, port))
        print(port)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit(1)
PY
}
