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

# inject_many N LOCAL: one message to N recipients LOCALi@nx.test; its id
inject_many() {
  local rcpts=() i
  for i in $(seq "$1"); do rcpts+=("$2$i@nx.test"); done
  printf 'Subject: many\r\n\r\nbody\r\n' |
    "$SLUICECTL" -c "$T/sluice.ini" inject --binding b1 -f '' "${rcpts[@]}"
}
# logged ID: "RECIPIENTS DISTINCT" logged bounced for ID (a line that is not JSON fails it)
logged() { python3 - "$T/delivery.log" "$1" <<'PY'
import json, sys
seen = []
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j["id"] == sys.argv[2] and j["outcome"] == "bounced":
        seen += j["rcpt"]
print(len(seen), len(set(seen)))
PY
}
all_logged() { [ "$(logged "$1" 2>/dev/null)" = "600 600" ]; }
id=$(inject_many 600 r)
check "the 600 recipients of a domain that does not exist are all logged bounced, once each" \
  wait_for 20 all_logged "$id"
check "in two lines (a line holds 512)" \
  test "$(grep -c "\"id\":\"$id\"" "$T/delivery.log")" -eq 2
# addresses of 70 bytes: 512 of them would not fit a line's 16 KB, which cut them
long=$(inject_many 600 "a-rather-long-local-part-for-a-newsletter-subscriber-number-")
check "600 recipients of 70 bytes are all logged too, every line whole JSON" \
  wait_for 20 all_logged "$long"
check "in as many lines as their length needs (more than two)" \
  test "$(grep -c "\"id\":\"$long\"" "$T/delivery.log")" -gt 2
echo "1..$_n"
