#!/usr/bin/env python3
"""make_corpus.py - write the seed corpus of every fuzz target (tests/fuzz/corpus/NAME/).

Run from anywhere; it rewrites the files it names and nothing else.  The seeds are small
valid inputs and edge cases of each format, made here by hand so they can be read and
reviewed; libFuzzer mutates from them.  DNS messages are packed byte by byte (RFC 1035
wire format, with and without name compression).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crlf(*lines):
    return "".join(l + "\r\n" for l in lines)


# ---- smtp: what the peer says, in the order the harness reads it ----
EHLO_PIPE = ["250-mx.test hello", "250-PIPELINING", "250-SIZE 1000000",
             "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250 STARTTLS"]
# four pipelined transactions (2, 1, 3 and 12 long recipients, the third after RSET), RSET, QUIT
PIPELINED = (["220 mx.test ESMTP"] + EHLO_PIPE +
             ["250 2.1.0 ok", "250 2.1.5 ok", "250 2.1.5 ok", "354 go on",
              "250 2.0.0 queued as A", "250 2.1.0 ok", "250 2.1.5 ok", "354 go on",
              "250 2.0.0 queued as B", "250 2.0.0 reset", "250 2.1.0 ok", "250 2.1.5 ok",
              "550 5.1.1 no such user", "250 2.1.5 ok", "354 go on", "250 2.0.0 queued as C",
              "250 2.1.0 ok"] + ["250 2.1.5 ok"] * 12 + ["354 go on", "250 2.0.0 queued as D",
              "250 2.0.0 reset", "221 2.0.0 bye"])
put("smtp", "pipelined", crlf(*PIPELINED))
# the same four as one BDAT run (CHUNKING offered): RSET leads all but the first
put("smtp", "chunked", crlf("220 mx.test ESMTP", "250-mx.test hello", "250-PIPELINING",
                            "250-CHUNKING", "250 SIZE 1000000",
                            "250 ok", "250 ok", "250 ok", "250 queued A",
                            "250 reset", "250 ok", "250 ok", "250 queued B",
                            "250 reset", "250 ok", "250 ok", "550 5.1.1 no", "250 ok",
                            "250 queued C", "250 reset", "250 ok", *(["250 ok"] * 12),
                            "250 queued D", "250 reset", "221 bye"))
put("smtp", "stepwise", crlf("220 mx.test", "250 mx.test",
                             "250 ok", "250 ok", "250 ok", "354 go", "250 done",
                             "250 ok", "250 ok", "354 go", "250 done",
                             "250 reset", "250 ok", "250 ok", "452 4.2.2 full", "250 ok",
                             "354 go", "250 done", "250 ok", *(["250 ok"] * 12), "354 go",
                             "250 done", "250 reset", "221 bye"))
put("smtp", "helo_fallback", crlf("220 old.test", "502 5.5.2 what?", "250 old.test",
                                  "553 5.1.8 sender refused", "503 5.5.1 bad sequence",
                                  "221 bye"))
put("smtp", "closing_421", crlf("220-mx.test", "220 welcome", *EHLO_PIPE,
                                "250 ok", "421 4.3.2 shutting down"))
put("smtp", "data_refused", crlf("220 mx", "250-mx", "250 PIPELINING", "250 ok", "550 no",
                                 "550 no", "554 5.5.1 no valid recipients", "250 ok", "250 ok",
                                 "354 go", "250 ok"))
put("smtp", "bare_lf", "220 mx\n250-mx\n250-PIPELINING\n250 SIZE\n250\n250\n250\n354\n250\n")
put("smtp", "code_changes", crlf("220 mx", "250-mx", "251 changed"))
put("smtp", "garbage", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
put("smtp", "out_of_range", crlf("220 mx", "199 too low"))
put("smtp", "size_huge", crlf("220 mx", "250-mx", "250-SIZE 99999999999999999999999",
                              "250 size 18446744073709551616"))
put("smtp", "greeting_refused", crlf("554 5.7.1 go away"))
put("smtp", "no_final_newline", "220 mx\r\n250 mx")
put("smtp", "empty", "")
# a line of exactly SL_SMTP_LINE_MAX (2048) bytes, then one of 2049
put("smtp", "line_2048", crlf("220 " + "a" * 2044, "250 " + "b" * 2045))
# the longest reply (128 lines) as the EHLO answer, then a 129-line one
put("smtp", "lines_128", crlf("220 mx", *(["250-x%d" % i for i in range(127)] + ["250 end"]),
                              *(["250-y%d" % i for i in range(128)] + ["250 end"])))
# a CR kept at the end of a full buffer: replies that straddle the 16 KB read buffer
put("smtp", "straddle", crlf("220 mx", *EHLO_PIPE) +
    crlf(*(["250-" + "c" * 1000] * 17 + ["250 ok"])) + crlf("250 ok", "250 ok", "354 go"))

# ---- config: the project's own files, and edge cases ----
for src, name in [("conf/demo.ini", "demo.ini"), ("tests/golden/seed000.ini", "seed000.ini"),
                  ("tests/golden/regex.ini", "regex.ini"), ("tests/golden/host.ini", "host.ini"),
                  ("tests/golden/yahoofriends.ini", "yahoofriends.ini"),
                  ("tests/golden/bad.ini", "bad.ini")]:
    with open(os.path.join(TOP, src), "rb") as f:
        put("config", name, f.read())
put("config", "every_scope.ini", """\xef\xbb\xbf; a BOM, then every kind of section
[global]
workers = 4
spool_dir = /var/lib/sluice/spool
shm_name = /sluice-fuzz
dns_server = [::1]:5353
max_message_size = 1048576
log_level = debug
[binding_group "g1"]
  server_max_outbound_connections = 100
[binding "b1"]
binding_group = g1
bind_address = 127.0.0.2
ehlo_hostname = out.example.net.
[binding "b2"]
bind_address = ::1
tls = verify
[domain "example.com"]
max_outbound_connections = 5
route = "relay.example.net:2525"
retry_interval = 500ms
message_expiration = 2d
max_retries = auto
[domain "/^(a|b)\\\\.example\\\\.(org|net)$/"]
scope_max_outbound_connections = 3
[host "MX.Example.COM."]
scope_max_outbound_connections = 7
max_outbound_connections = 2
[binding "b1" domain "example.com"]
max_outbound_connections = -1
[binding_group "g1" domain "example.com"]
scope_max_outbound_connections = 9
[binding "b2" host "mx.example.com"]
cluster_max_outbound_connections = 4
[binding_group "g1" host "mx.example.com"]
max_outbound_connections = 1 ; a comment
""")
put("config", "edge_cases.ini", "[global]\r\nworkers = 0\r\nworkers = 2\r\nno_such = 1\r\n"
    "[domain \"/]x;y#z/\"]\nmx_limit = 3\n[domain \"a\\\"b\"]\n[binding \"x\" binding \"y\"]\n"
    "[host \"/re/\"]\nkey without separator\n= novalue\nconnect_timeout = 0s\n"
    "data_timeout = 99999999999999999999\n[global\n[]\n" + "x" * 300 + " = 1\n"
    "tls_ca_file = /nonexistent/ca.pem\n")
put("config", "nul.ini", b"[global]\nworkers = 1\x00\nworkers = 2\n")
put("config", "empty.ini", "")

# ---- spool: a queue file, then "@state" and a state file ----
ID = "0AbCdEfGhIjKlMnOpQrS"
HEAD = ("sluice-spool 1\nid %s\narrival 1767225600\nbinding default\ndsn 0\n"
        "from sender@example.org\nsize 20\n" % ID)
put("spool", "two_parts", HEAD + "rcpt 0 a@Example.COM\nrcpt 1 b@example.net\n"
    "rcpt 0 c@example.com\n\nSubject: hi\r\n\r\n..dot\r\n"
    "\n@state\nattempts 2\nnext 1767229200\nreply 451 4.7.1 try later\ndone 0 D\ndone 2 B\n")
put("spool", "bounce", HEAD.replace("dsn 0", "dsn 1").replace("sender@example.org", "") +
    "rcpt 0 \"quoted.local\"@[IPv6:2001:DB8::1]\n\nx\r\n")
put("spool", "literal", HEAD + "rcpt 0 postmaster@[192.0.2.1]\n\nbody\r\n"
    "\n@state\nattempts 0\nnext 0\nreply \n")
put("spool", "smtputf8", (HEAD.replace("sender@example.org", "j\u00f6rg@example.org") +
                          "ret full\nsmtputf8 1\nrcpt 0 \u00fc@B\u00fccher.example\n"
                          "rcpt 0 z@xn--bcher-kva.example\n\nSubject: \u00fc\r\n\r\nx\r\n").encode())
put("spool", "no_body", HEAD + "rcpt 0 a@example.com\n\n")
put("spool", "no_crlf", HEAD + "rcpt 0 a@example.com\n\nbody without its CRLF")
put("spool", "truncated", HEAD + "rcpt 0 a@example.com\n")
put("spool", "bad_part", HEAD + "rcpt 1 a@example.com\n\nx\r\n")
put("spool", "state_bad", HEAD + "rcpt 0 a@example.com\n\nx\r\n"
    "\n@state\nattempts 4294967296\nnext 1\nreply x\ndone 9 D\n")
put("spool", "state_long_reply", HEAD + "rcpt 0 a@example.com\n\nx\r\n"
    "\n@state\nattempts 1\nnext 1\nreply " + "r" * 600 + "\n")
put("spool", "state_only", "garbage\n@state\nattempts 1\nnext 2\nreply ok\ndone 3 D\ndone 0 B\n")
put("spool", "nul", HEAD.replace("default", "def\x00ault") + "rcpt 0 a@example.com\n\nx\r\n")

# ---- dns: DNS messages as a server sends them ----
def name(n, comp=None):
    """A name in wire format; comp = (suffix, offset) points at an earlier copy."""
    out = b""
    labels = [l for l in n.split(".") if l]
    for i, l in enumerate(labels):
        rest = ".".join(labels[i:])
        if comp and rest == comp[0]:
            return out + struct.pack("!H", 0xC000 | comp[1])
        out += bytes([len(l)]) + l.encode()
    return out + b"\x00"


def rr(owner, rtype, rdata, ttl=300):
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def msg(qname, qtype, answers=(), additional=(), flags=0x8180, ident=0x1234, rcode=0):
    head = struct.pack("!HHHHHH", ident, flags | rcode, 1, len(answers), 0, len(additional))
    return head + name(qname) + struct.pack("!HH", qtype, 1) + b"".join(answers) + \
        b"".join(additional)


A, NS, CNAME, MX, TXT, AAAA, TLSA = 1, 2, 5, 15, 16, 28, 52
Q = 12  # offset of the question's name, for compression pointers
put("dns", "mx_with_glue", msg("example.com", MX, [
    rr(name("example.com"), MX, struct.pack("!H", 10) + name("mx1.example.com")),
    rr(name("example.com"), MX, struct.pack("!H", 10) + name("mx2.example.com")),
    rr(name("example.com"), MX, struct.pack("!H", 20) + name("backup.example.net"))], [
    rr(name("mx1.example.com"), A, bytes([192, 0, 2, 1])),
    rr(name("mx1.example.com"), AAAA, bytes(15) + b"\x01"),
    rr(name("MX2.example.com"), A, bytes([192, 0, 2, 2]))]))
put("dns", "mx_compressed", msg("example.com", MX, [
    rr(struct.pack("!H", 0xC000 | Q), MX, struct.pack("!H", 5) + b"\x02mx" +
       struct.pack("!H", 0xC000 | Q))]))
put("dns", "null_mx", msg("example.com", MX, [
    rr(name("example.com"), MX, struct.pack("!H", 0) + b"\x00")]))
put("dns", "mx_odd_names", msg("example.com", MX, [
    rr(name("example.com"), MX, struct.pack("!H", 1) + b"\x04a b.\x07example\x00"),
    rr(name("example.com"), MX, struct.pack("!H", 2) + b"\x03a\\b\x00"),
    rr(name("example.com"), MX, b"")]))
put("dns", "a_aaaa", msg("mx.example.com", A, [
    rr(name("mx.example.com"), A, bytes([198, 51, 100, 7])),
    rr(name("mx.example.com"), A, bytes([198, 51, 100, 7])),
    rr(name("mx.example.com"), AAAA, bytes.fromhex("20010db8000000000000000000000025")),
    rr(name("mx.example.com"), A, bytes([1, 2, 3]))]))
put("dns", "cname_chain", msg("www.example.com", A, [
    rr(name("www.example.com"), CNAME, name("a.example.com")),
    rr(name("a.example.com"), CNAME, name("b.example.com")),
    rr(name("b.example.com"), CNAME, name("www.example.com"))]))
put("dns", "tlsa", msg("_25._tcp.mx.example.com", TLSA, [
    rr(name("_25._tcp.mx.example.com"), TLSA, bytes([3, 1, 1]) + bytes(range(32))),
    rr(name("_25._tcp.mx.example.com"), TLSA, bytes([2, 0, 0]) + bytes(600)),
    rr(name("_25._tcp.mx.example.com"), TLSA, bytes([3, 1]))], flags=0x81a0))
put("dns", "txt_sts", msg("_mta-sts.example.com", TXT, [
    rr(name("_mta-sts.example.com"), TXT, b"\x0fv=STSv1; id=20\x0f26010100000000Z;"),
    rr(name("_mta-sts.example.com"), TXT, b"\x0bv=spf1 -all"),
    rr(name("_mta-sts.example.com"), TXT, b"\x05\x00\x01\x7f\xff\n\x00")]))
put("dns", "nxdomain", msg("nope.example.com", MX, rcode=3))
put("dns", "loop_pointer", struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0) +
    struct.pack("!H", 0xC000 | Q) + struct.pack("!HH", MX, 1))

# ---- mta_sts: policy bodies, TXT records, cache files ----
GOOD = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n"
put("mta_sts", "policy", GOOD)
put("mta_sts", "policy_crlf", "mx:MX1.Example.COM.  \r\nmax_age:\t604800\r\nfoo-bar.x: whatever:"
    " really\r\nmode: testing\r\nversion: STSv1")
put("mta_sts", "policy_none", "version: STSv1\nmode: none\nmax_age: 0\n")
put("mta_sts", "policy_many_mx", "version: STSv1\nmode: enforce\nmax_age: 31557600\n" +
    "".join("mx: mx%d.example.com\n" % i for i in range(17)))
put("mta_sts", "policy_bad", "version: STSv2\nmode: enforce\nmax_age: 99999999999\nmx: *.\n"
    "mx: " + "a" * 300 + "\n")
put("mta_sts", "txt", "v=STSv1; id=20260101T000000;\nv=spf1 -all\n  v=STSv1 ;id=abc ; x=y\n")
put("mta_sts", "txt_bad_id", "v=STSv1; id=not-an-id!\n")
put("mta_sts", "cache", "sluice-mta-sts 1\nid 20260101\nfetched 1767225600\n\n" + GOOD)
put("mta_sts", "cache_old", "sluice-mta-sts 1\nid x\nfetched -9223372036854775807\n\n" + GOOD)

# ---- body: the message inject reads ----
put("body", "lf", "From: a@example.org\nTo: b@example.com\nSubject: hi\n\nhello\n.\n..two\n")
put("body", "crlf", "Subject: crlf\r\n\r\n.leading dot\r\nlast line without end")
put("body", "mixed", "a\rb\r\nc\n\rd\n\n\r\r.\r")
put("body", "longest_line", "x" * 998 + "\n." + "y" * 997 + "\n")
put("body", "too_long", "z" * 999 + "\n")
put("body", "nul", "ok\nnot\x00ok\n")
put("body", "dot", ".")

# ---- address: one command-line argument each ----
for i, a in enumerate([
        "user@example.com", "first.last+tag@sub.example.co.uk", "\"quoted\\\"pair\"@example.com",
        "postmaster@[192.0.2.1]", "x@[IPv6:2001:DB8::1]", "a@b", "",
        "a" * 64 + "@" + ("b" * 63 + ".") * 3 + "c" * 61, "a" * 65 + "@example.com",
        "dot.@example.com", "a..b@example.com", "a@-example.com", "a@example-.com",
        "a@exa_mple.com", "\"\"@example.com", "a b@example.com", "a@example.com\r\n",
        "caf\xe9@example.com", "\"a\\", "0AbCdEfGhIjKlMnOpQrS", "a@[1.2.3]", "a@[IPv6:1.2.3.4]",
        "@example.com", "a@", "\\x@example.com"]):
    put("address", "%02d" % i, a)
# RFC 6531: UTF-8 addresses (bytes, as argv carries them)
for name, a in [("utf8_local", "j\u00f6rg@example.com"), ("utf8_idn", "\u00fc@B\u00fccher.example"),
                ("utf8_cjk", "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a"),
                ("utf8_bad_idn", "a@bad\u200fname.example")]:
    put("address", name, a.encode("utf-8"))
put("address", "utf8_overlong", b"\xc0\xaf@example.com")
put("address", "utf8_c1", b"a\xc2\x85@example.com")

# ---- smtpd: what a client says to the listener, one conversation each ----
ENV = ["EHLO client.test", "MAIL FROM:<a@sender.test>", "RCPT TO:<r@sink.test>"]
put("smtpd", "plain", crlf(*ENV, "DATA", "Subject: hi", "", "body", "..dot", ".", "QUIT"))
put("smtpd", "pipelined_two", crlf(*ENV, "DATA", "Subject: one", "", "x", ".",
                                   "MAIL FROM:<> SIZE=10 BODY=8BITMIME", "RCPT TO:<q@sink.test>",
                                   "DATA", "X-B: b", "Subject: two", "", "y", ".", "QUIT"))
put("smtpd", "bdat", crlf(*ENV, "BDAT 12") + "Subject: b\r\n" + crlf("BDAT 6 LAST") +
    "\r\nhi\r\n" + crlf("QUIT"))
put("smtpd", "smuggle_lf", crlf(*ENV, "DATA") + "Subject: s\r\n\r\nfirst\n.\nMAIL FROM:<e@x>\r\n"
    + crlf(".", "QUIT"))
put("smtpd", "smuggle_cr", crlf(*ENV, "DATA") + "Subject: s\r\n\r\nfirst\r.\rMAIL FROM:<e@x>\r\n"
    + crlf(".", "QUIT"))
put("smtpd", "dsn", crlf("EHLO c", "MAIL FROM:<a@s.test> RET=HDRS ENVID=x+2By",
                         "RCPT TO:<r@sink.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;o+40x.test",
                         "RCPT TO:<n@sink.test> NOTIFY=NEVER", "DATA", "s", ".", "QUIT"))
put("smtpd", "errors", crlf("MAIL FROM:<a@b>", "HELO", "EHLO", "RCPT TO:<x@y.test>", "DATA",
                            "BDAT x", "AUTH PLAIN", "STARTTLS", "VRFY x", "NOOP", "RSET", "EXPN",
                            "MAIL FROM:<a b@c>", "QUIT"))
put("smtpd", "limits", crlf("EHLO c", "MAIL FROM:<a@s.test> SIZE=99999999", "MAIL FROM:<a@s.test>",
                            *["RCPT TO:<r%d@sink.test>" % i for i in range(6)], "DATA",
                            "x" * 1200, ".", "QUIT"))
put("smtpd", "long_command", "NOOP " + "x" * 3000 + "\r\nQUIT\r\n")
put("smtpd", "binding_header", crlf(*ENV, "DATA", "X-B: b", "X-B2: no", "Subject: h", "", "x",
                                    ".", *ENV[1:], "DATA", "X-B: nosuch", "", "y", ".", "QUIT"))
put("smtpd", "no_end", crlf(*ENV, "DATA", "Subject: cut", "", "never ends"))
put("smtpd", "empty", "")
