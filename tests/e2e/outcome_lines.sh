#!/usr/bin/env bash
# outcome_lines.sh - every recipient's outcome is in the delivery log, however many a message
# has: one line holds at most 512 recipients, and a part with more gets as many lines as it
# needs (600 recipients at a domain that does not exist: all 600 bounced, none left out).
. "$(dirname "$0")/lib/tap.sh"
. "$(dirname "$0")/lib/dns.sh"
shm=/sluice-e2e-outlines-$$

dns_zone test <<'EOF2'
mx.sink     A  127.0.1.33
EOF2
dns_start
{
  ini_global 1
  cat <<INI
dns_server = $DNS_SERVER

[binding "b1"]
bind_address = 127.0.0.2
INI
} >"$T/sluice.ini"
sluiced_start

rcpts=()
for i in $(seq 600); do rcpts+=("r$i@nx.test"); done
id=$(printf 'Subject: many\r\n\r\nbody\r\n' |
  "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f '' "${rcpts[@]}")
logged() { python3 - "$T/delivery.log" "$id" <<'PY'
import json, sys
seen = []
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["id"] == sys.argv[2] and j["outcome"] == "bounced":
        seen += j["rcpt"]
print(len(seen), len(set(seen)))
PY
}
all_logged() { [ "$(logged 2>/dev/null)" = "600 600" ]; }
check "the 600 recipients of a domain that does not exist are all logged bounced, once each" \
  wait_for 20 all_logged
check "in two lines (a line holds 512)" \
  test "$(grep -c "\"id\":\"$id\"" "$T/delivery.log")" -eq 2
echo "1..$_n"
