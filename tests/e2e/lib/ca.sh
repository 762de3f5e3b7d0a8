# ca.sh - a private certificate authority for the TLS tests (STARTTLS peers, MTA-STS servers,
# DANE).  Source it after tap.sh; everything lives under $T/ca and is made with the openssl
# command line (EC P-256 keys: quick to make).
#
#   ca_init                     make the CA ($CA_DIR/ca.crt, ca.key); sets CA_DIR and CA_CERT
#   ca_issue NAME DNSNAME...    a server certificate NAME.crt/NAME.key signed by the CA, valid
#                               for the DNS names given (subjectAltName); prints nothing
#   ca_self NAME DNSNAME...     the same, self-signed (chains to nothing: a peer to distrust)
#   ca_spki_sha256 CERT         hex SHA-256 of the certificate's public key (a TLSA 3 1 1 value)
#   ca_cert_sha256 CERT         hex SHA-256 of the whole certificate (a TLSA 3 0 1 value)

ca_init() {
  CA_DIR=$T/ca
  CA_CERT=$CA_DIR/ca.crt
  mkdir -p "$CA_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=sluice test CA" -keyout "$CA_DIR/ca.key" -out "$CA_CERT" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
}

# _ca_san DNSNAME...: "DNS:a,DNS:b"
_ca_san() {
  local out="" n
  for n in "$@"; do out+="${out:+,}DNS:$n"; done
  printf '%s' "$out"
}

ca_issue() {
  local name=$1
  shift
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$CA_DIR/$name.key" -out "$CA_DIR/$name.csr" 2>/dev/null
  openssl x509 -req -in "$CA_DIR/$name.csr" -CA "$CA_CERT" -CAkey "$CA_DIR/ca.key" \
    -CAcreateserial -days 30 -out "$CA_DIR/$name.crt" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$(_ca_san "$@")") \
    2>/dev/null
}

ca_self() {
  local name=$1
  shift
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$1" \
    -keyout "$CA_DIR/$name.key" -out "$CA_DIR/$name.crt" \
    -addext "subjectAltName=$(_ca_san "$@")" 2>/dev/null
}

ca_spki_sha256() {
  openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
    openssl dgst -sha256 -r | cut -d' ' -f1
}

ca_cert_sha256() {
  openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
}
