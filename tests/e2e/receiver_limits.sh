#!/usr/bin/env bash
# receiver_limits.sh - RFC 9422 LIMITS: a receiver that announces "LIMITS RCPTMAX=2 MAILMAX=2"
# in its EHLO reply gets at most 2 recipients per transaction and 2 transactions per
# connection, whatever the config allows (max_recipients_per_batch = 100 here); the
# delivery log notes the limits; a receiver without LIMITS gets the config's batch.
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/peer.sh"

shm=/sluice-e2e-rlimits-$$
peer_start mx '{"127.0.1.1": {"extensions": ["LIMITS RCPTMAX=2 MAILMAX=2"]}}' 127.0.1.1 127.0.1.2
cat >"$T/sluice.ini" <<INI
[global]
workers = 1
shm_name = $shm
spool_dir = $T/spool
delivery_log = $T/delivery.log
max_recipients_per_batch = 100

[domain "limited.test"]
route = 127.0.1.1:$PEER_PORT
[domain "plain.test"]
route = 127.0.1.2:$PEER_PORT
INI
inject() { printf 'Subject: t\r\n\r\nbody\r\n' | "$SLUICECTL" -c "$T/sluice.ini" inject -f s@sender.test "$@" >/dev/null; }

inject r1@limited.test r2@limited.test r3@limited.test r4@limited.test r5@limited.test
inject p1@plain.test p2@plain.test p3@plain.test p4@plain.test p5@plain.test
"$SLUICED" -c "$T/sluice.ini" 2>"$T/daemon.log" &
started $!
check "every recipient is delivered" \
  wait_for 15 peer_true mx "dest('127.0.1.1')['recipients'] == 5 and dest('127.0.1.2')['recipients'] == 5"
check "RCPTMAX=2 splits the batch of 5 into 3 transactions" \
  peer_true mx "dest('127.0.1.1')['transactions'] == 3"
check "no transaction carried more than 2 recipients" \
  peer_true mx "max(len(e['rcpt_to']) for e, b in messages() if e['dst'] == '127.0.1.1') == 2"
check "MAILMAX=2: a second connection for the third transaction" \
  peer_true mx "dest('127.0.1.1')['connections'] == 2 and dest('127.0.1.1')['max_per_connection'] == 2"
check "without LIMITS the config's batch goes in one transaction" \
  peer_true mx "dest('127.0.1.2')['transactions'] == 1"
check "the delivery log notes the receiver's limits" \
  grep -q '"domain":"limited.test".*"outcome":"delivered".*"limits":{"rcptmax":2,"mailmax":2}' "$T/delivery.log"
check "and not where none were announced" bash -c "! grep '\"domain\":\"plain.test\"' '$T/delivery.log' | grep -q limits"
