# dns.sh - a real authoritative DNS server (nsd) with test zones, for the
# end-to-end tests.  Source it after tap.sh.
#
#   dns_zone ORIGIN <<'EOF'       write the zone ORIGIN (e.g. "test") from the
#   multi   MX 10 mx1.multi       records on stdin; an SOA and an NS are added,
#   mx1.multi A 127.0.1.1         $ORIGIN and $TTL are set, so relative names
#   EOF                           work.  Once per zone, before dns_start (a
#                                 pipe into it works too: the file is the state).
#   dns_start [IP [PORT]]         start nsd in the foreground (-d) as a child,
#                                 serving every zone written so far, on IP
#                                 (default 127.0.0.53) at a free high port (or
#                                 at PORT, e.g. 53 for a resolv.conf); wait
#                                 until dig gets an answer; export
#                                 DNS_SERVER="IP:PORT" (for `dns_server =`),
#                                 DNS_IP, DNS_PORT and DNS_PID.
#   dns_query NAME TYPE           dig's short answer from the running server.
#   dns_silent_udp [IP]           a UDP socket that never answers (a dead DNS
#                                 server); exports SILENT_SERVER="IP:PORT".
#
# Everything nsd writes (config, pid, xfrd state, zone list, log) stays under
# $T/dns; nothing under /etc/nsd or elsewhere on the system is read or touched.
# nsd is registered with `started`, so tap.sh ends it at exit.

_dns_dir=$T/dns
_dns_fixed_port=
mkdir -p "$_dns_dir"

# dns_zone ORIGIN: write $T/dns/ORIGIN.zone from the records on stdin
dns_zone() {
  local origin=${1%.} f
  f=$_dns_dir/$origin.zone
  {
    printf '$ORIGIN %s.\n$TTL 60\n' "$origin"
    printf '@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n' "$origin" "$origin"
    printf '@ IN NS ns.%s.\nns IN A 127.0.0.53\n' "$origin"
    cat
  } >"$f"
}

# _dns_zones: the origins of the zone files written so far
_dns_zones() {
  local f
  for f in "$_dns_dir"/*.zone; do [ -f "$f" ] && basename "$f" .zone; done
}

# _dns_free_port IP: a UDP and TCP port free on IP right now
_dns_free_port() {
  python3 - "$1" <<'PY'
import socket, sys
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((sys.argv[1], 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind((sys.argv[1], port))
    except OSError:
        continue
    print(port)
    break
PY
}

# _dns_write_conf IP PORT: nsd.conf for the zones written so far
_dns_write_conf() {
  local z
  {
    cat <<EOF
server:
  ip-address: $1@$2
  do-ip6: no
  username: ""
  chroot: ""
  server-count: 1
  zonesdir: "$_dns_dir"
  database: ""
  pidfile: "$_dns_dir/nsd.pid"
  xfrdfile: "$_dns_dir/xfrd.state"
  xfrdir: "$_dns_dir"
  zonelistfile: "$_dns_dir/zone.list"
  logfile: "$_dns_dir/nsd.log"
  verbosity: 1
  hide-version: yes
  # no response rate limiting (200 answers/s to a client by default): a benchmark's
  # resolvers ask thousands of times a second from loopback
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
EOF
    for z in $(_dns_zones); do
      printf 'zone:\n  name: "%s"\n  zonefile: "%s.zone"\n' "$z" "$z"
    done
  } >"$_dns_dir/nsd.conf"
}

# dns_start [IP [PORT]]: start nsd on IP at a free port (or PORT); exports DNS_SERVER
dns_start() {
  local ip=${1:-127.0.0.53} z
  local _dns_fixed_port=${2:-} # seen by _dns_launch (dynamic scope)
  z=$(_dns_zones | head -1)
  [ -n "$z" ] || { echo "dns_start: no zone (call dns_zone first)" >&2; return 1; }
  if ! _dns_launch "$ip" "$z" _dns_write_conf "$_dns_dir/nsd.out" \
    /usr/sbin/nsd -d -c "$_dns_dir/nsd.conf"; then
    echo "dns_start: nsd did not answer on $ip; its log:" >&2
    cat "$_dns_dir/nsd.out" "$_dns_dir/nsd.log" >&2 2>/dev/null
    return 1
  fi
  DNS_PID=$_dns_pid
  export DNS_IP=$ip DNS_PORT=$_dns_port DNS_SERVER=$ip:$_dns_port DNS_PID
}

# _dns_launch IP ZONE CONF_FN OUT CMD...: start a DNS server (CMD, in the foreground, output
# appended to OUT) on a free port of IP (or on $_dns_fixed_port when set), its config written
# first by `CONF_FN IP PORT`; up to 5 ports (a fixed port once) are tried until it answers
# ZONE's SOA.  Sets _dns_pid and _dns_port; 1 when it never did.
_dns_launch() {
  local ip=$1 zone=$2 conf=$3 out=$4 try
  shift 4
  for try in 1 2 3 4 5; do
    _dns_port=${_dns_fixed_port:-$(_dns_free_port "$ip")}
    "$conf" "$ip" "$_dns_port"
    "$@" >>"$out" 2>&1 &
    _dns_pid=$!
    started "$_dns_pid"
    wait_for 10 _dns_answers "$_dns_pid" "$ip" "$_dns_port" "$zone" && return 0
    kill -TERM "$_dns_pid" 2>/dev/null
    wait "$_dns_pid" 2>/dev/null
    [ -z "${_dns_fixed_port:-}" ] || break # a fixed port does not get free by trying again
  done
  return 1
}

# _dns_answers PID IP PORT ZONE: true once the server (still running) gives the zone's SOA
_dns_answers() {
  alive "$1" || return 1
  [ -n "$(dig +short +time=1 +tries=1 @"$2" -p "$3" "$4." SOA 2>/dev/null)" ]
}

# dns_query NAME TYPE: the server's short answer
dns_query() { dig +short +time=1 +tries=1 @"$DNS_IP" -p "$DNS_PORT" "$1" "$2"; }

# dns_silent_udp [IP]: a UDP socket that reads nothing and answers nothing
dns_silent_udp() {
  local ip=${1:-127.0.0.54} portfile=$_dns_dir/silent.port
  rm -f "$portfile"
  python3 - "$ip" "$portfile" <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
while True:
    time.sleep(3600)
PY
  started $!
  wait_for 5 test -s "$portfile" || return 1
  export SILENT_SERVER=$ip:$(cat "$portfile")
}
