#!/usr/bin/env bash
# deps.sh - install the Debian packages sluice builds and tests with, if missing.
# Each is named once here; the README says why each is there.
set -euo pipefail

pkgs=(
  gcc clang make pkg-config clang-format      # toolchain, and the format check
  libclang-rt-14-dev # libFuzzer for make fuzz (clang only recommends it)
  libinih-dev      # INI parsing of the config file
  libbsd-dev       # strlcpy/strlcat, setproctitle
  libpcre2-dev     # regex domain stanzas, in Momentum's (PCRE) syntax
  libsodium-dev    # keyed hash (SipHash) of counter names, random keys
  libldns-dev      # DNS resolution (MX, A, AAAA, TLSA)
  libssl-dev       # TLS (STARTTLS), certificate checks, DANE (SSL_dane_*)
  libcurl4-openssl-dev # HTTPS fetch of MTA-STS policies
  libmicrohttpd-dev    # the HTTP endpoint of `sluicectl metrics --listen`
  libidn2-dev      # IDNA2008: a UTF-8 domain (RFC 6531) routed and counted by its A-label
  libhiredis-dev   # the Redis client of the cluster counters' leases (cluster/)
  redis-server     # a real Redis for the cluster tests and the lease benchmark
  openssl          # test certificates for the STARTTLS peers
  curl             # a real HTTP client scraping the metrics endpoint in tests
  unbound          # a real validating resolver for the DNSSEC (DANE) tests
  ldnsutils        # ldns-keygen and ldns-signzone sign the DANE test zone
  systemd          # systemd-analyze verify of the unit file
  libsystemd-dev   # sd_notify: readiness, reload and stop for systemd (Type=notify)
  libcmocka-dev    # unit-test framework
  python3          # test helpers: JSON checks, the sd_notify listener
  procps           # ps, for the end-to-end tests
  strace           # holds a worker inside a system call, to kill it there (worker_tmp.sh)
  nsd              # a real authoritative DNS server for the test zones
  postfix          # real SMTP peers: smtpd as a receiving server, smtp-sink for speed
  dnsutils         # dig, to check the test zones are served before a test starts
  swaks            # a real SMTP client submitting to the listener (plain, STARTTLS, AUTH)
  libnet-ssleay-perl # swaks' STARTTLS
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure the machine's own mail; the tests run private
# instances, so the system one stays unconfigured and is never started by us.
echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
