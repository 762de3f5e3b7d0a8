# dnssec.sh - a DNSSEC test bed for the end-to-end tests: zones signed with
# ldns-signzone, served by nsd (dns.sh), behind a real validating resolver
# (unbound) on loopback, so sluice sees the AD bit and SERVFAIL exactly as a
# production resolver on its own machine would give them.  Source it after
# tap.sh and dns.sh.
#
#   dnssec_zone ORIGIN <<'EOF'   a zone to sign: records as for dns_zone (an
#   mx A 127.0.1.1               SOA and an NS are added); signed at
#   EOF                          dnssec_start with a fresh KSK and ZSK
#                                (ECDSAP256SHA256), the KSK's DS becoming
#                                unbound's trust anchor for ORIGIN.
#   dns_zone ORIGIN <<'EOF'      (dns.sh) an unsigned zone: served through the
#                                same unbound as insecure (domain-insecure).
#   dnssec_tamper ORIGIN OWNER TYPE
#                                after signing, change the data of OWNER's TYPE
#                                records (OWNER fully qualified, no final dot)
#                                but keep their signature: the resolver finds
#                                them bogus and answers SERVFAIL.
#   dnssec_start [IP]            sign, start nsd (dns_start), then unbound on
#                                IP (default 127.0.2.53) at a free high port
#                                with a stub zone per zone; wait until it
#                                answers; export DNSSEC_SERVER="IP:PORT" (for
#                                `dns_server =`), DNSSEC_IP, DNSSEC_PORT and
#                                DNSSEC_PID.  DNS_SERVER stays nsd's (no AD).
#   dnssec_dig ARGS...           dig +dnssec against the running unbound
#   dnssec_ad NAME TYPE          true when unbound's reply has the AD flag
#   dnssec_rcode NAME TYPE       the reply's status: NOERROR, SERVFAIL, ...
#
# Keys, signed zones, unbound.conf and unbound.log stay under $T/dnssec;
# nothing outside $T is read or written.  Both servers run in the foreground
# as the current user and are registered with `started`.

_dnssec_dir=$T/dnssec
mkdir -p "$_dnssec_dir"
: >"$_dnssec_dir/signed.list"
: >"$_dnssec_dir/tamper.list"

# dnssec_zone ORIGIN: a zone to sign at dnssec_start (records on stdin)
dnssec_zone() {
  local origin=${1%.}
  dns_zone "$origin"
  echo "$origin" >>"$_dnssec_dir/signed.list"
}

# dnssec_tamper ORIGIN OWNER TYPE: make OWNER's TYPE records bogus after signing
dnssec_tamper() {
  echo "${1%.} ${2%.}. $3" >>"$_dnssec_dir/tamper.list"
}

# _dnssec_sign ORIGIN: sign $T/dns/ORIGIN.zone in place; the DS goes to ORIGIN.ds
_dnssec_sign() {
  local origin=$1 zone=$_dns_dir/$1.zone ksk zsk
  (
    cd "$_dnssec_dir" || exit 1
    ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$origin") &&
      zsk=$(ldns-keygen -a ECDSAP256SHA256 "$origin") &&
      cp "$zone" "$origin.unsigned" &&
      ldns-signzone -f "$origin.signed" "$origin.unsigned" "$ksk" "$zsk" &&
      tr '\t' ' ' <"$ksk.ds" >"$origin.ds"
  ) || { echo "dnssec: cannot sign $origin" >&2; return 1; }
  _dnssec_apply_tampers "$origin" <"$_dnssec_dir/$origin.signed" >"$zone"
}

# _dnssec_apply_tampers ORIGIN: the signed zone on stdin with the last
# character of each tampered record's data changed (its RRSIG left as it was)
_dnssec_apply_tampers() {
  awk -v origin="$1" '
    FILENAME == ARGV[1] { if ($1 == origin) bad[$2 " " $3] = 1; next }
    ($1 " " $4) in bad {
      c = substr($0, length($0), 1)
      $0 = substr($0, 1, length($0) - 1) (c == "0" ? "1" : "0")
    }
    { print }' "$_dnssec_dir/tamper.list" -
}

# _dnssec_write_conf IP PORT: unbound.conf: every zone of $T/dns a stub zone
# at nsd, the signed ones with their trust anchor, the others insecure
_dnssec_write_conf() {
  local z tld
  {
    cat <<EOF
server:
  interface: $1@$2
  port: $2
  do-ip4: yes
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  access-control: 127.0.0.0/8 allow
  username: ""
  chroot: ""
  directory: "$_dnssec_dir"
  pidfile: "$_dnssec_dir/unbound.pid"
  logfile: "$_dnssec_dir/unbound.log"
  use-syslog: no
  do-daemonize: no
  verbosity: 1
  log-queries: yes
  val-log-level: 2
  log-servfail: yes
  num-threads: 1
  do-not-query-localhost: no
  module-config: "validator iterator"
  qname-minimisation: no
  hide-version: yes
EOF
    for tld in $(_dns_zones | awk -F. '{print $NF}' | sort -u); do
      printf '  local-zone: "%s." nodefault\n' "$tld"
    done
    for z in $(_dns_zones); do
      if grep -qx "$z" "$_dnssec_dir/signed.list"; then
        printf '  trust-anchor: "%s"\n' "$(cat "$_dnssec_dir/$z.ds")"
      else
        printf '  domain-insecure: "%s."\n' "$z"
      fi
    done
    printf 'remote-control:\n  control-enable: no\n'
    for z in $(_dns_zones); do
      printf 'stub-zone:\n  name: "%s."\n  stub-addr: %s@%s\n' "$z" "$DNS_IP" "$DNS_PORT"
    done
  } >"$_dnssec_dir/unbound.conf"
}

# dnssec_start [IP]: sign, start nsd and unbound; exports DNSSEC_SERVER
dnssec_start() {
  local ip=${1:-127.0.2.53} z
  while read -r z; do _dnssec_sign "$z" || return 1; done <"$_dnssec_dir/signed.list"
  dns_start || return 1
  z=$(head -1 "$_dnssec_dir/signed.list")
  z=${z:-$(_dns_zones | head -1)}
  if ! _dns_launch "$ip" "$z" _dnssec_write_conf "$_dnssec_dir/unbound.out" \
    unbound -d -c "$_dnssec_dir/unbound.conf"; then
    echo "dnssec_start: unbound did not answer on $ip; its log:" >&2
    cat "$_dnssec_dir/unbound.out" "$_dnssec_dir/unbound.log" >&2 2>/dev/null
    return 1
  fi
  DNSSEC_PID=$_dns_pid
  export DNSSEC_IP=$ip DNSSEC_PORT=$_dns_port DNSSEC_SERVER=$ip:$_dns_port DNSSEC_PID
  # Ready once it validates, not once it answers: its first validated answer needs the chain
  # of trust from nsd, which on a loaded machine can come after dig has given up (the first
  # check of the test then failed while every later one passed).
  if [ -s "$_dnssec_dir/signed.list" ] && ! wait_for 10 dnssec_ad "$z" SOA; then
    echo "dnssec_start: unbound does not validate $z; its log:" >&2
    cat "$_dnssec_dir/unbound.out" "$_dnssec_dir/unbound.log" >&2 2>/dev/null
    return 1
  fi
}

dnssec_dig() { dig +dnssec +time=2 +tries=2 @"$DNSSEC_IP" -p "$DNSSEC_PORT" "$@"; }

dnssec_ad() {
  dnssec_dig "$1" "$2" | grep -q '^;; flags:[^;]* ad[ ;]'
}

dnssec_rcode() {
  dnssec_dig "$1" "$2" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'
}
