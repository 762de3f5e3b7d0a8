#!/usr/bin/env bash
# metrics.sh - `sluicectl metrics`, the Prometheus exposition of the shared memory, end to end:
# the real daemon delivers to the scripted sink through a real DNS server, and the exposition
# must agree with what `sluicectl counters --json` and the delivery log say.
#   - while the sink holds sessions open, every counter's in-use, limit, peak and refusals
#     equal the inspector's (a regex scope's key, with its backslash, survives the label
#     escaping); the binding x domain limit (3) and server_max (40) are exported; the
#     server's in-use is the open sessions;
#   - recipients are counted one by one: delivered equals the recipients delivered;
#   - a peer that stalls RCPT past rcpt_to_timeout (1 s) raises
#     sluice_timeouts_total{phase="rcpt_to"} and defers; a 550 recipient raises bounced;
#   - --listen ADDR:PORT serves it to curl: 200, Content-Type text/plain; version=0.0.4, a body
#     that parses as the exposition format (a strict parser: every sample's family has # TYPE,
#     label values escaped, counters end in _total); a second scrape shows the new values;
#     other paths 404, other methods 405; no daemon: 503; SIGTERM ends it with status 0;
#   - a bad --listen address, and no daemon at all: one line on stderr, non-zero status.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-metrics-$$
ctl() { "$SLUICECTL" -c "$T/sluice.ini" "$@"; }

dns_zone test <<'EOF'
hold        MX 10 mx.hold
mx.hold     A  127.0.1.1
stall       MX 10 mx.stall
mx.stall    A  127.0.1.2
bounce      MX 10 mx.bounce
mx.bounce   A  127.0.1.3
sender      MX 10 mx.sender
mx.sender   A  127.0.1.4
EOF
dns_start

# .1 holds every final reply, so sessions stay open; .2 never answers RCPT; .3 refuses nobody@
peer_start mx '{
  "127.0.1.1": {"hold": 4},
  "127.0.1.2": {"stall": {"rcpt_to": 30}},
  "127.0.1.3": {"rcpt": [{"match": "^nobody@", "reply": "550 5.1.1 no such user"}]}
}' 127.0.1.1 127.0.1.2 127.0.1.3 127.0.1.4 || { not_ok "the sink starts"; exit 1; }

cat >"$T/sluice.ini" <<INI
[global]
workers = 8
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
dns_server = $DNS_SERVER
smtp_port = $(peer_port mx)
idle_timeout = 1s
retry_interval = 1h
server_max_outbound_connections = 40

[binding "b1"]
bind_address = 127.0.0.2

[domain "hold.test"]
max_outbound_connections = 3

[domain "/^(hold|bounce)\.test\$/"]
scope_max_outbound_connections = 5

[domain "stall.test"]
rcpt_to_timeout = 1s
INI

# The exposition parser: strict about the 0.0.4 text format; prints the expression evaluated
# with m(NAME, label=value...) -> the sample's value (None when absent) and series (every
# sample: {(name, ((label, value), ...)): value}).  Exit 1 with the first fault found.
cat >"$T/expo.py" <<'PY'
import json, re, sys
NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r'(%s)(?:\{((?:%s)(?:,%s)*)?\})? (\S+)(?: -?\d+)?$' % (NAME, LABEL, LABEL))
def unescape(v):
    return re.sub(r'\\(.)', lambda m: {'n': '\n'}.get(m.group(1), m.group(1)), v)
def parse(text):
    types, helps, series, done, current = {}, {}, {}, set(), None
    if not text.endswith('\n'):
        raise ValueError('the exposition does not end with a newline')
    for n, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('# HELP ') or line.startswith('# TYPE '):
            parts = line.split(' ', 3)
            if len(parts) < 4 or not re.fullmatch(NAME, parts[2]):
                raise ValueError(f'line {n}: bad comment line {line!r}')
            table = helps if parts[1] == 'HELP' else types
            if parts[2] in table:
                raise ValueError(f'line {n}: a second {parts[1]} for {parts[2]}')
            if parts[1] == 'TYPE' and parts[3] not in ('counter', 'gauge', 'histogram', 'untyped'):
                raise ValueError(f'line {n}: unknown type {parts[3]}')
            if parts[1] == 'TYPE' and parts[2] in done:
                raise ValueError(f'line {n}: TYPE of {parts[2]} after its samples')
            table[parts[2]] = parts[3]
            continue
        if line.startswith('#') or line == '':
            raise ValueError(f'line {n}: unexpected line {line!r}')
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f'line {n}: not a sample: {line!r}')
        name = family = m.group(1)
        for suffix in ('_bucket', '_sum', '_count'):  # a histogram's samples
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'histogram':
                family = name[:-len(suffix)]
        if family not in types:
            raise ValueError(f'line {n}: {name} has no # TYPE before it')
        if types[family] == 'counter' and not name.endswith('_total'):
            raise ValueError(f'line {n}: counter {name} does not end in _total')
        if types[family] == 'histogram' and family == name:
            raise ValueError(f'line {n}: histogram {name} sampled without _bucket, _sum or _count')
        if family != current and family in done:
            raise ValueError(f'line {n}: samples of {family} are not together')
        current = family
        done.add(family)
        labels = tuple(sorted((k, unescape(v)) for k, v in re.findall(LABEL, m.group(2) or '')))
        if name.endswith('_bucket') and family != name and 'le' not in dict(labels):
            raise ValueError(f'line {n}: bucket {name} without le')
        if len({k for k, _ in labels}) != len(labels):
            raise ValueError(f'line {n}: a label twice')
        if (name, labels) in series:
            raise ValueError(f'line {n}: the same series twice')
        series[(name, labels)] = float(m.group(m.lastindex))
    for name in types:
        if name not in helps:
            raise ValueError(f'{name} has no # HELP')
    return series
if __name__ == '__main__':
    try:
        series = parse(open(sys.argv[1], encoding='utf-8').read())
    except ValueError as e:
        sys.exit(f'invalid exposition: {e}')
    m = lambda name, **l: series.get((name, tuple(sorted(l.items()))))
    v = eval(sys.argv[2]) if len(sys.argv) > 2 else True
    print(v if isinstance(v, str) else json.dumps(v))
PY
# expo FILE EXPR: the expression over the exposition in FILE; expo_true FILE EXPR: exit 0 if true
expo() { python3 "$T/expo.py" "$@"; }
expo_true() { test "$(expo "$1" "bool($2)")" = true; }
# scrape FILE: `sluicectl metrics` into FILE
scrape() { ctl metrics >"$1"; }
inject() { # inject DOMAIN RCPT_LOCALPART...
  local dom=$1 r=(); shift
  for l in "$@"; do r+=("$l@$dom"); done
  printf 'Subject: metrics\r\n\r\nbody\r\n' | ctl inject --binding b1 -f s@sender.test "${r[@]}" >/dev/null
}
# log_count OUTCOME: recipients of attempts with that outcome in the delivery log (lines of
# phase "limits" are mail held back for a connection slot: not attempted, not an outcome)
log_count() {
  python3 -c 'import json,sys
print(sum(len(l["rcpt"]) if isinstance(l["rcpt"], list) else 1
          for l in map(json.loads, open(sys.argv[1]))
          if l["outcome"] == sys.argv[2] and l.get("phase") != "limits"))' \
    "$T/delivery.log" "$1"
}

# --- no daemon: a clear line, non-zero
ctl metrics >"$T/out" 2>"$T/err"
rc=$?
check "no daemon: non-zero exit ($rc)" test $rc -ne 0
check "no daemon: one line on stderr saying so" \
  test "$(wc -l <"$T/err")" -eq 1 -a "$(grep -c 'no daemon running' "$T/err")" -eq 1
check "no daemon: nothing on stdout" test ! -s "$T/out"

# --- bad --listen addresses: a line and non-zero, at once
for bad in nonsense 127.0.0.1 127.0.0.1:99999 127.0.0.1:http not.an.ip:9100 192.0.2.1:9100; do
  timeout 10 "$SLUICECTL" -c "$T/sluice.ini" metrics --listen "$bad" >"$T/out" 2>"$T/err"
  rc=$?
  check "--listen $bad: refused with a non-zero status ($rc) and one line" \
    test $rc -ne 0 -a $rc -ne 124 -a "$(wc -l <"$T/err")" -eq 1 -a ! -s "$T/out"
done
echo "# e.g. $(cat "$T/err")"

# --- sessions held open: the exposition agrees with the inspector
for i in 1 2 3 4 5 6; do inject hold.test "a$i" "b$i"; done
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
daemon=$!
started "$daemon"
three_held() { peer_true mx "dest('127.0.1.1')['sessions'] == 3"; }
check "the sink holds 3 sessions (the binding x domain limit)" wait_for 20 three_held

# agree: one scrape and one `counters --json` that agree on every counter, with 3 held
agree() {
  scrape "$T/m1" && ctl counters --json >"$T/c1" || return 1
  python3 -c '
import json, sys
sys.path.insert(0, sys.argv[3])
from expo import parse
s = parse(open(sys.argv[1]).read())
c = json.load(open(sys.argv[2]))["counters"]
def key(x):
    return "*" if not x["name"] else (x["name"] + " " + x["name2"] if x["name2"] else x["name"])
for x in c:
    l = (("kind", x["scope"]), ("scope", key(x)))
    got = (s.get(("sluice_connections_in_use", l)), s.get(("sluice_connection_limit", l)),
           s.get(("sluice_connections_peak", l)), s.get(("sluice_connections_refused_total", l)))
    want = (x["in_use"], x["limit"] if x["limit"] >= 0 else None, x["peak"], x["refused"])
    if got != want:
        sys.exit(f"{l}: metrics {got}, counters {want}")
n = sum(1 for k in s if k[0] == "sluice_connections_in_use")
if n != len(c):
    sys.exit(f"{n} counters in the metrics, {len(c)} in counters --json")
bd = s.get(("sluice_connections_in_use", (("kind", "binding_domain"), ("scope", "b1 hold.test"))))
if bd != 3 or s.get(("sluice_server_connections_in_use", ())) != 3:
    sys.exit(f"binding_domain b1 hold.test in use {bd}, want 3")
' "$T/m1" "$T/c1" "$T" >"$T/agree.err" 2>&1
}
check "while 3 sessions are held, every counter (in use, limit, peak, refused) equals counters --json" \
  wait_for 15 agree
[ -s "$T/agree.err" ] && sed 's/^/# /' "$T/agree.err"
check "the binding x domain limit 3 is exported" \
  expo_true "$T/m1" "m('sluice_connection_limit', kind='binding_domain', scope='b1 hold.test') == 3"
check "the regex scope's key keeps its backslash through the label escaping" \
  expo_true "$T/m1" "m('sluice_connection_limit', kind='domain', scope=r'/^(hold|bounce)\.test\$/') == 5"
check "the raw line escapes that backslash" \
  grep -qF 'scope="/^(hold|bounce)\\.test$/"' "$T/m1"
check "server_max (40) is the server's limit" \
  expo_true "$T/m1" "m('sluice_server_connection_limit') == 40"
check "the workers are counted" expo_true "$T/m1" "m('sluice_workers') == 8"

queue_empty() { test -z "$(ls "$T/spool/queue")"; }
check "the held mail is delivered" wait_for 60 queue_empty
scrape "$T/m2"
check "delivered counts recipients: 12 for 6 messages of 2" \
  expo_true "$T/m2" "m('sluice_recipients_total', outcome='delivered') == 12"
check "and so does the delivery log" test "$(log_count delivered)" -eq 12
check "nothing deferred or bounced yet" \
  expo_true "$T/m2" "m('sluice_recipients_total', outcome='deferred') == 0 and m('sluice_recipients_total', outcome='bounced') == 0"
check "no timeout yet" expo_true "$T/m2" "sum(v for k, v in series.items() if k[0] == 'sluice_timeouts_total') == 0"
opened=$(peer_stat mx "total['connections']")
check "sessions opened: as many as the sink accepted ($opened), none encrypted" \
  expo_true "$T/m2" "m('sluice_connections_opened_total') == $opened >= 3 and m('sluice_tls_connections_total') == 0"

# --- the HTTP listener
lport=$(peer_free_port 127.0.0.9)
"$SLUICECTL" -c "$T/sluice.ini" metrics --listen "127.0.0.9:$lport" 2>"$T/listen.err" &
listener=$!
started "$listener"
url=http://127.0.0.9:$lport/metrics
# get FILE [CURL ARGS...]: status code on stdout, headers in FILE.h, body in FILE
get() { local f=$1; shift; curl -sS --max-time 10 -D "$f.h" -o "$f" -w '%{http_code}' "$@"; }
listening() { get "$T/h0" "$url" >/dev/null; }
check "the listener answers" wait_for 15 listening
code=$(get "$T/h1" "$url")
check "GET /metrics: 200 ($code)" test "$code" = 200
check "Content-Type: text/plain; version=0.0.4" \
  grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/h1.h"
check "the body parses as the exposition format" expo "$T/h1" 'len(series)' >/dev/null
check "the body shows the 12 delivered" \
  expo_true "$T/h1" "m('sluice_recipients_total', outcome='delivered') == 12"
check "every metric family has # HELP and # TYPE" \
  test "$(grep -c '^# TYPE sluice_' "$T/h1")" -eq "$(grep -c '^# HELP sluice_' "$T/h1")" -a \
  "$(grep -c '^# TYPE sluice_' "$T/h1")" -ge 19
check "another path: 404" test "$(get "$T/h2" "http://127.0.0.9:$lport/")" = 404
check "POST: 405" test "$(get "$T/h3" -X POST -d x "$url")" = 405

# a stalled RCPT and a refused recipient, then a second scrape
inject stall.test slow
inject bounce.test nobody fine
stall_settled() { grep -q '"domain":"stall.test".*"outcome":"deferred".*"phase":"rcpt_to"' "$T/delivery.log"; }
check "the stalled RCPT is deferred in phase rcpt_to" wait_for 30 stall_settled
dsn_sent() { test "$(log_count delivered)" -eq 14; } # fine@bounce.test and the bounce report
check "the bounce report went out" wait_for 30 dsn_sent
code=$(get "$T/h4" "$url")
check "second scrape: 200 ($code)" test "$code" = 200
check "second scrape: sluice_timeouts_total{phase=\"rcpt_to\"} is 1" \
  expo_true "$T/h4" "m('sluice_timeouts_total', phase='rcpt_to') == 1"
check "second scrape: the other phases have no timeout" \
  expo_true "$T/h4" "sum(v for k, v in series.items() if k[0] == 'sluice_timeouts_total') == 1"
check "second scrape: 1 bounced, 1 deferred, 14 delivered" \
  expo_true "$T/h4" "(m('sluice_recipients_total', outcome='bounced'), m('sluice_recipients_total', outcome='deferred'), m('sluice_recipients_total', outcome='delivered')) == (1, 1, 14)"
opened=$(peer_stat mx "total['connections']")
check "second scrape: sessions opened as many as the sink accepted ($opened)" \
  expo_true "$T/h4" "m('sluice_connections_opened_total') == $opened"
check "the delivery log agrees (bounced $(log_count bounced), deferred $(log_count deferred))" \
  test "$(log_count bounced)" -eq 1 -a "$(log_count deferred)" -eq 1

# --- the daemon stops: the listener says so, then stops on SIGTERM
kill -TERM "$daemon"
wait "$daemon"
check "sluiced exits 0 on SIGTERM" test $? -eq 0
code=$(get "$T/h5" "$url")
check "no daemon: the scrape gets 503 ($code)" test "$code" = 503
check "and a line saying why" grep -q 'no daemon running' "$T/h5"
ctl metrics >"$T/out" 2>"$T/err"
rc=$?
check "sluicectl metrics after the daemon stopped: non-zero ($rc), one line" \
  test $rc -ne 0 -a "$(wc -l <"$T/err")" -eq 1
kill -TERM "$listener"
wait "$listener"
rc=$?
check "the listener exits 0 on SIGTERM ($rc)" test $rc -eq 0
check "the listener said where it listened, and nothing else" \
  test "$(cat "$T/listen.err")" = "sluicectl: serving metrics at http://127.0.0.9:$lport/metrics"
gone() { ! curl -s --max-time 2 -o /dev/null "$url"; }
check "and no longer listens" gone
