# postfix.sh - a private Postfix instance as a real SMTP peer for the end-to-end tests.
# Source it after tap.sh.  Everything lives under $T; the system's Postfix (/etc/postfix,
# /var/spool/postfix) is never read, written or started.  The instance runs its master in the
# foreground (master -d), registered with `started`, so tap.sh's clean-up ends it and its
# children; nothing is chrooted, no DNS is used (loopback addresses only, IPv4).
#
# Needs root: master binds the listener and hands queue files to the `postfix` user, and
# `postfix check` creates the queue directories with their owners (postfix, postdrop).
#
#   postfix_start ADDR PORT DOMAIN...
#       A receiving server on ADDR:PORT (127.0.1.x) that accepts mail for DOMAIN... (any
#       local part) and stores each message in $POSTFIX_MAIL/DOMAIN/LOCALPART/new/ (Maildir);
#       any other domain gets 554 5.7.1 (no relaying).
#       Sets POSTFIX_DIR (the instance's directory) and POSTFIX_MAIL.  Returns once the port
#       answers 220; 1 (with the log on stderr) if it does not within 20 s.
#   postfix_relay_start ADDR PORT NEXTHOP_IP NEXTHOP_PORT [MAIN_CF_LINE...]
#       A relay on ADDR:PORT that accepts anything from 127.0.0.0/8 and sends it all to
#       [NEXTHOP_IP]:NEXTHOP_PORT; extra main.cf lines tune it (e.g.
#       "default_destination_concurrency_limit = 50", "smtp_bind_address = 127.0.0.3").
#       Sets POSTFIX_DIR.  Used by the benchmark to compare drain rates.
#   postfix_stop [DIR]           stop that instance (default: $POSTFIX_DIR) and wait for it
#   postfix_delivered [DIR]      number of messages stored in the Maildirs
#   postfix_queued [DIR]         number of messages still in the queue (incoming/active/deferred)
#   postfix_up ADDR PORT         true when ADDR:PORT answers 220
#   postfix_log [DIR]            the instance's log file name
#   postfix_pid [DIR]            the root of the instance's process tree (a small reaper whose
#       child is master; every daemon of the instance descends from it, for CPU accounting)
# Extra main.cf lines for postfix_start may be given in POSTFIX_EXTRA (one per line).
# DNS: with POSTFIX_RESOLV_CONF=FILE set when an instance starts, its master (and so every
# daemon) runs in a private mount namespace (unshare --mount) where FILE is bind-mounted over
# /etc/resolv.conf: with "smtp_dns_support_level = enabled" and "smtp_host_lookup = dns" its
# smtp client asks the test's DNS server (dns.sh's dns_start IP 53: resolv.conf has no port).
# The system's /etc/resolv.conf is never written; nothing outside the namespace sees the mount.
# STARTTLS: with POSTFIX_TLS_CERT and POSTFIX_TLS_KEY (PEM files, e.g. from ca.sh's ca_issue)
# set, postfix_start's smtpd offers STARTTLS with that certificate (not required), logs each
# TLS session in the maillog ("Anonymous TLS connection established from ...: TLSv1.3 with
# cipher ...") and notes it in the Received header.

_postfix_n=0
declare -A _postfix_pid=()

# _postfix_dirs: a fresh instance directory; sets _pd
_postfix_dirs() {
  _postfix_n=$((_postfix_n + 1))
  _pd=$T/postfix.$_postfix_n
  mkdir -p "$_pd/etc" "$_pd/data" "$_pd/mail" "$_pd/queue"
  # the instance's daemons reach its files through $T; root made $T 0700
  chmod 0711 "$T"
  chown postfix:postfix "$_pd/data"
}

# _postfix_main_cf DIR ADDR: the settings every instance shares
_postfix_main_cf() {
  local d=$1 addr=$2
  cat <<EOF
compatibility_level = 3.6
config_directory = $d/etc
queue_directory = $d/queue
data_directory = $d/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $d/maillog
maillog_file_prefixes = $d
myhostname = postfix-${addr//./-}.test
mydomain = test
myorigin = \$myhostname
mydestination =
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtputf8_enable = no
smtpd_recipient_restrictions =
local_recipient_maps =
EOF
}

# _postfix_master_cf ADDR PORT: the services an instance runs (none chrooted)
_postfix_master_cf() {
  cat <<EOF
$1:$2 inet  n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

# Runs master as a child and reaps every process of the instance: master's daemons outlive it
# by a moment on SIGTERM; this way "stopped" means all of them are gone, and none is left to
# init.  SIGTERM/SIGINT are passed to master.
_postfix_reaper='
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
master = os.fork()
if master == 0:
    os.execv(sys.argv[1], sys.argv[1:])
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda s, f: os.kill(master, signal.SIGTERM))
status = 1
while True:
    try:
        pid, st = os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    if pid == master:
        status = os.waitstatus_to_exitcode(st)
sys.exit(status)
'

# postfix_up ADDR PORT: true when the port answers 220 (public: tests check a stop with it)
postfix_up() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
ok = s.makefile("rb").readline().startswith(b"220")
s.sendall(b"QUIT\r\n")
sys.exit(0 if ok else 1)
PY
}

# _postfix_run DIR ADDR PORT: create the queue, start master in the foreground, wait for 220
_postfix_run() {
  local d=$1 addr=$2 port=$3 pid
  if ! postfix -c "$d/etc" check >"$d/check.log" 2>&1; then
    echo "postfix check failed:" >&2; cat "$d/check.log" "$d/maillog" >&2 2>/dev/null; return 1
  fi
  local run=(python3 -c "$_postfix_reaper" /usr/lib/postfix/sbin/master -c "$d/etc" -d)
  if [ -n "${POSTFIX_RESOLV_CONF:-}" ]; then
    # sh and then the reaper replace unshare in the same process: $! stays the reaper
    run=(unshare --mount --propagation private sh -c \
      'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$POSTFIX_RESOLV_CONF" "${run[@]}")
  fi
  "${run[@]}" >"$d/master.out" 2>&1 &
  pid=$!
  started "$pid"
  _postfix_pid[$d]=$pid
  POSTFIX_DIR=$d
  if ! wait_for 20 postfix_up "$addr" "$port"; then
    echo "postfix on $addr:$port did not answer 220:" >&2
    cat "$d/master.out" "$d/maillog" >&2 2>/dev/null
    return 1
  fi
}

postfix_start() {
  local addr=$1 port=$2 _pd; shift 2
  _postfix_dirs
  {
    _postfix_main_cf "$_pd" "$addr"
    echo "virtual_mailbox_domains = $*"
    echo "smtpd_relay_restrictions = reject_unauth_destination"
    # every address of those domains exists; the store transport files it by recipient
    echo "virtual_mailbox_maps = static:any"
    echo "virtual_transport = store"
    echo "store_destination_recipient_limit = 1"
    _postfix_tls_cf
    echo "${POSTFIX_EXTRA:-}"
  } >"$_pd/etc/main.cf"
  _postfix_store_sh >"$_pd/etc/store.sh"
  chown nobody: "$_pd/mail"
  {
    _postfix_master_cf "$addr" "$port"
    echo "store     unix  - n n - - pipe flags=DR user=nobody argv=/bin/sh $_pd/etc/store.sh $_pd/mail \${domain} \${user}"
    [ -z "${POSTFIX_TLS_CERT:-}" ] || echo "tlsmgr    unix  - - n 1000? 1 tlsmgr"
  } >"$_pd/etc/master.cf"
  POSTFIX_MAIL=$_pd/mail
  _postfix_run "$_pd" "$addr" "$port"
}

# _postfix_tls_cf: smtpd's STARTTLS settings when POSTFIX_TLS_CERT/POSTFIX_TLS_KEY are set
_postfix_tls_cf() {
  [ -n "${POSTFIX_TLS_CERT:-}" ] || return 0
  cat <<EOF
smtpd_tls_security_level = may
smtpd_tls_cert_file = $POSTFIX_TLS_CERT
smtpd_tls_key_file = ${POSTFIX_TLS_KEY:?POSTFIX_TLS_KEY goes with POSTFIX_TLS_CERT}
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
EOF
}

# _postfix_store_sh: the delivery command: stdin into BASE/DOMAIN/LOCALPART/new/ (Maildir)
_postfix_store_sh() {
  cat <<'EOF'
# store.sh BASE DOMAIN LOCALPART: one message (stdin) into a Maildir; run by pipe(8)
set -e
case "$2/$3" in */*/*|.*|*/.*|*/) exit 65;; esac   # no path tricks from the address
dir=$1/$2/$3
mkdir -p "$dir/tmp" "$dir/new" "$dir/cur"
name=$(date +%s.%N).$$.sink
cat >"$dir/tmp/$name"
mv "$dir/tmp/$name" "$dir/new/$name"
EOF
}

postfix_relay_start() {
  local addr=$1 port=$2 hop=$3 hop_port=$4 _pd; shift 4
  _postfix_dirs
  {
    _postfix_main_cf "$_pd" "$addr"
    echo "relayhost = [$hop]:$hop_port"
    echo "smtpd_relay_restrictions = permit_mynetworks, reject"
    printf '%s\n' "$@"
  } >"$_pd/etc/main.cf"
  _postfix_master_cf "$addr" "$port" >"$_pd/etc/master.cf"
  _postfix_run "$_pd" "$addr" "$port"
}

postfix_stop() {
  local d=${1:-$POSTFIX_DIR} pid
  pid=${_postfix_pid[$d]:-}
  [ -n "$pid" ] || return 1
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "_postfix_pid[$d]"
  return 0
}

postfix_delivered() {
  local d=${1:-$POSTFIX_DIR}
  find "$d/mail" -path '*/new/*' -type f 2>/dev/null | wc -l
}

postfix_queued() {
  local d=${1:-$POSTFIX_DIR}
  find "$d/queue/incoming" "$d/queue/active" "$d/queue/deferred" "$d/queue/maildrop" \
    -type f 2>/dev/null | wc -l
}

postfix_log() { echo "${1:-$POSTFIX_DIR}/maillog"; }

postfix_pid() { echo "${_postfix_pid[${1:-$POSTFIX_DIR}]}"; }
