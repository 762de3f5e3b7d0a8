#!/usr/bin/env bash
# resolve.sh - where mail goes: `sluicectl resolve` against a real nsd.
#
# The resolver of the workers (MX order and shuffle, mx_limit,
# multihomed_limit, no MX, null MX, NXDOMAIN, CNAMEs, IP-literal MX, routes,
# smtp_port, the binding's address family, timeouts) through the real binary,
# with test zones served by nsd on loopback (tests/e2e/lib/dns.sh).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/tap.sh"
. "$here/lib/dns.sh"

dns_zone test <<'EOF'
multi        MX 10 mx1.multi
multi        MX 20 mx2a.multi
multi        MX 20 mx2b.multi
multi        MX 30 mx3.multi
multi        MX 40 mx4.multi
mx1.multi    A 127.0.1.1
mx1.multi    A 127.0.1.2
mx1.multi    A 127.0.1.3
mx1.multi    A 127.0.1.4
mx1.multi    AAAA ::1
mx2a.multi   A 127.0.1.5
mx2b.multi   A 127.0.1.6
mx3.multi    A 127.0.1.7
mx4.multi    A 127.0.1.8
single       MX 5 MX.Single
mx.single    A 127.0.1.9
nomx         A 127.0.1.10
nomx         AAAA ::1
nullmx       MX 0 .
cname        MX 10 alias.cname
alias.cname  CNAME real.cname
real.cname   A 127.0.1.11
literal      MX 10 127.0.1.12.
noaddr       MX 10 nowhere.test.
v6only       MX 10 mx.v6only
stale        MX 10 gone.stale
stale        MX 20 mx.stale
mx.stale     A 127.0.1.13
mx.v6only    AAAA ::1
noip         MX 10 mx.noip
v4host       A 127.0.1.14
mx.noip      TXT "a host with no address of either family"
alias        CNAME multi
EOF
# 40 MX hosts with long names: too big for one UDP reply.
for i in $(seq 40); do
  echo "@ MX $i a-rather-long-name-for-a-mail-exchanger-number-$i"
  echo "a-rather-long-name-for-a-mail-exchanger-number-$i A 127.0.1.$i"
done | dns_zone big.test
if ! dns_start; then
  not_ok "nsd serves the test zones"
  exit 1
fi
ok "nsd serves the test zones on $DNS_SERVER"

cat >"$T/sluice.ini" <<EOF
dns_server = $DNS_SERVER
[binding "v4"]
bind_address = 127.0.0.2
[binding "v6"]
bind_address = ::1
[domain "few.test"]
[domain "single.test"]
smtp_port = 2525
[domain "routed.test"]
route = 127.0.1.20:2600
[domain "routed-name.test"]
route = MX2A.multi.test
[domain "routed-v6.test"]
route = [::1]:2601
[domain "routed-dot.test"]
route = mx2a.multi.test.:2602
EOF
cat >"$T/limits.ini" <<EOF
dns_server = $DNS_SERVER
[domain "multi.test"]
mx_limit = 2
multihomed_limit = 8
[domain "big.test"]
mx_limit = 64
[domain "stale.test"]
mx_limit = 1
EOF

out=$T/out
# res CONFIG ARGS...: run sluicectl resolve; stdout in $out, status in $rc
res() { local c=$1; shift; "$SLUICECTL" -c "$T/$c" resolve "$@" >"$out" 2>"$T/err"; rc=$?; }
# expect DESCRIPTION STATUS TEXT: the last run gave exactly TEXT and STATUS
expect() {
  if [ "$rc" -eq "$2" ] && [ "$(cat "$out")" = "$3" ]; then ok "$1"; else
    not_ok "$1"; echo "# status $rc, got:"; sed 's/^/#   /' "$out" "$T/err"
    echo "# wanted status $2:"; printf '%s\n' "$3" | sed 's/^/#   /'
  fi
}

res sluice.ini multi.test
hosts=$(cut -d' ' -f1,2 "$out" | tr '\n' ' ')
case $hosts in
"10 mx1.multi.test 20 mx2a.multi.test 20 mx2b.multi.test 30 mx3.multi.test 40 mx4.multi.test " | \
"10 mx1.multi.test 20 mx2b.multi.test 20 mx2a.multi.test 30 mx3.multi.test 40 mx4.multi.test ")
  ok "MX hosts in preference order" ;;
*) not_ok "MX hosts in preference order"; sed 's/^/#   /' "$out" "$T/err" ;;
esac
check "multihomed_limit 2 (default): two IPv4 addresses of mx1, IPv4 first" \
  grep -qx '10 mx1.multi.test 127.0.1.1:25 127.0.1.2:25' "$out"

seen_a=0 seen_b=0
for _ in $(seq 30); do
  res sluice.ini multi.test
  case $(sed -n 2p "$out") in
  "20 mx2a.multi.test "*) seen_a=1 ;;
  "20 mx2b.multi.test "*) seen_b=1 ;;
  esac
  [ $seen_a = 1 ] && [ $seen_b = 1 ] && break
done
check "equal preferences come in both orders over repeated runs" test $seen_a$seen_b = 11

res limits.ini multi.test
check "mx_limit 2 keeps the two best hosts" test "$(wc -l <"$out")" -eq 2 -a "$(sed -n 2p "$out" | cut -d' ' -f1)" = 20
check "multihomed_limit 8 gives every address of mx1, IPv6 last" \
  grep -qx '10 mx1.multi.test 127.0.1.1:25 127.0.1.2:25 127.0.1.3:25 127.0.1.4:25 \[::1\]:25' "$out"

res sluice.ini SINGLE.Test.
expect "smtp_port of a domain stanza; host name in lower case" 0 "5 mx.single.test 127.0.1.9:2525"
res sluice.ini nomx.test
expect "no MX: the domain's own A and AAAA" 0 "0 nomx.test 127.0.1.10:25 [::1]:25"
res sluice.ini --binding v4 nomx.test
expect "a binding with an IPv4 bind_address gets no AAAA" 0 "0 nomx.test 127.0.1.10:25"
res sluice.ini --binding v6 nomx.test
expect "a binding with an IPv6 bind_address gets no A" 0 "0 nomx.test [::1]:25"
res sluice.ini --binding v4 v6only.test
expect "an MX with only IPv6 addresses, an IPv4 binding: the mail waits (the binding is the operator's)" 2 \
  "tempfail: no MX host of v6only.test has an IPv4 address (it has IPv6 ones, which this IPv4 binding cannot reach)"
res sluice.ini --binding v6 single.test
expect "an MX with only IPv4 addresses, an IPv6 binding: the same" 2 \
  "tempfail: no MX host of single.test has an IPv6 address (it has IPv4 ones, which this IPv6 binding cannot reach)"
res sluice.ini --binding v6 literal.test
expect "an MX that is an IPv4 literal, an IPv6 binding: the same" 2 \
  "tempfail: no MX host of literal.test has an IPv6 address (it has IPv4 ones, which this IPv6 binding cannot reach)"
res sluice.ini --binding v6 v4host.test
expect "no MX and an IPv4 address only, an IPv6 binding: the same" 2 \
  "tempfail: no MX and no IPv6 address for v4host.test (it has IPv4 ones, which this IPv6 binding cannot reach)"
res sluice.ini --binding v4 noip.test
expect "an MX host with no address of either family is no host, for a binding of one family too" 1 \
  "nohost: no MX host of noip.test has an IPv4 address"
res sluice.ini nullmx.test
expect "null MX: the nullmx line, exit 1" 1 "nullmx: nullmx.test accepts no mail (null MX)"
res sluice.ini nosuch.test
expect "NXDOMAIN: no host, exit 1" 1 "nohost: nosuch.test does not exist (NXDOMAIN)"
res sluice.ini noaddr.test
expect "an MX host that does not exist is dropped: no host" 1 \
  "nohost: no MX host of noaddr.test has an address"
res limits.ini stale.test
expect "mx_limit 1, the best MX gone: the next MX is the host kept, not a bounce" 0 \
  "20 mx.stale.test 127.0.1.13:25"
res sluice.ini cname.test
expect "an MX pointing at a CNAME is followed" 0 "10 alias.cname.test 127.0.1.11:25"
res sluice.ini literal.test
expect "an MX pointing at an IP literal is used as is" 0 "10 127.0.1.12 127.0.1.12:25"
res sluice.ini alias.test
check "a domain that is a CNAME gets the MX of its target" grep -q '^10 mx1.multi.test ' "$out"
res sluice.ini big.test
check "an MX set too big for UDP is asked again over TCP: mx_limit 7 (default) hosts" \
  test "$rc" -eq 0 -a "$(wc -l <"$out")" -eq 7 -a "$(tail -1 "$out" | cut -d' ' -f1,3)" = "7 127.0.1.7:25"
res limits.ini big.test
check "mx_limit 64 is capped at 16 hosts" test "$(wc -l <"$out")" -eq 16
res sluice.ini not.served.example
check "a REFUSED answer is a temporary failure (exit 2)" \
  test "$rc" -eq 2 -a "$(grep -c '^tempfail: DNS server .* answered REFUSED for MX' "$out")" -eq 1

res sluice.ini routed.test
expect "a route to an IP literal replaces the MX lookup (routed.test has no DNS at all)" 0 \
  "0 127.0.1.20 127.0.1.20:2600"
res sluice.ini routed-name.test
expect "a route to a name: that host, lower case, its address, smtp_port" 0 \
  "0 mx2a.multi.test 127.0.1.5:25"
res sluice.ini routed-dot.test
expect "a route to a name with its final dot (as the config takes it)" 0 \
  "0 mx2a.multi.test 127.0.1.5:2602"
res sluice.ini routed-v6.test
expect "a route [v6]:port" 0 "0 ::1 [::1]:2601"
res sluice.ini --binding v4 routed-v6.test
check "a route the binding's family cannot reach waits (exit 2)" test "$rc" -eq 2

# A server that never answers: tempfail within the timeout, not much later.
dns_silent_udp
sed "s/^dns_server = .*/dns_server = $SILENT_SERVER/" "$T/sluice.ini" >"$T/silent.ini"
start=$(date +%s%N)
res silent.ini --timeout 1 multi.test
took=$((($(date +%s%N) - start) / 1000000))
check "a silent DNS server: tempfail, exit 2" grep -q '^tempfail: DNS timeout .*for MX multi.test' "$out"
check "... after the 1 s timeout and well before 3 s (took $took ms)" test "$took" -ge 900 -a "$took" -lt 3000
check "... exit status 2" test "$rc" -eq 2
# A port nobody listens on: refused at once, still a temporary failure.
closed=$(_dns_free_port 127.0.0.55)
sed "s/^dns_server = .*/dns_server = 127.0.0.55:$closed/" "$T/sluice.ini" >"$T/closed.ini"
res closed.ini --timeout 1 multi.test
check "a DNS port nobody listens on: tempfail, exit 2" test "$rc" -eq 2 -a "$(grep -c '^tempfail: ' "$out")" -eq 1
res sluice.ini --binding nosuch multi.test
check "an unknown binding is bad usage (exit 2, nothing on stdout)" test "$rc" -eq 2 -a ! -s "$out"
