#!/usr/bin/env python3
"""smtp_raw.py - byte-exact SMTP sessions against sluice's listener, for what no ordinary
client sends: SMTP smuggling, commands pipelined before STARTTLS, BDAT, a body cut short.

Usage: smtp_raw.py HOST PORT CASE [ARG...]; prints every reply line the server sent, one per
line, then exits 0 (a connection the server closed is not an error).
  smuggle-lf | smuggle-cr | smuggle-crlf-lf   a message with <LF>.<LF> (<CR>.<CR>, or a
        <CRLF>.<LF>) followed by a MAIL FROM:<evil@evil.test>, then the real end
  starttls-inject                   "STARTTLS\\r\\nRSET\\r\\n" in one write, then the handshake,
        then EHLO: prints "TLS" when the handshake was done, and the replies after it
  bdat FROM TO                      a message in two BDAT chunks, the second LAST
  hold FROM TO SECONDS              a session that stops in the middle of DATA for SECONDS,
        then finishes the message and sends MAIL again (to see the reply after a SIGTERM);
        prints "HOLDING" when the first part of the body is sent
  longline FROM TO                  a body line of 1500 octets
  longcmd N [lf]                    EHLO, then a NOOP command of N characters (CRLF after them,
        or a bare LF)
"""
import socket
import ssl
import sys
import time


def replies(s, wait=1.5):
    """Every reply line until the server is quiet for `wait` seconds or closes."""
    s.settimeout(wait)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ssl.SSLError, ConnectionResetError):
        pass
    return out.decode(errors="replace").splitlines()


def show(lines):
    for line in lines:
        print(line, flush=True)


def envelope(frm, to):
    return b"EHLO raw.test\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (frm.encode(), to.encode())


def main():
    host, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    args = sys.argv[4:]
    s = socket.create_connection((host, port), timeout=10)
    show(replies(s, 1.0))
    evil = b"MAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@sink.test>\r\nDATA\r\nsmuggled\r\n"
    frm, to = (args + ["a@sender.test", "r@sink.test"])[:2]
    if case.startswith("smuggle"):
        sep = {"smuggle-lf": b"\n.\n", "smuggle-cr": b"\r.\r", "smuggle-crlf-lf": b"\r\n.\n"}[case]
        s.sendall(envelope(frm, to) + b"DATA\r\nSubject: smuggle\r\n\r\nfirst" + sep + evil +
                  b".\r\nQUIT\r\n")
        show(replies(s))
    elif case == "starttls-inject":
        s.sendall(b"EHLO raw.test\r\n")
        show(replies(s, 1.0))
        s.sendall(b"STARTTLS\r\nRSET\r\n")
        line = s.recv(4096)
        show(line.decode(errors="replace").splitlines())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s)
        print("TLS", flush=True)
        t.sendall(b"EHLO raw.test\r\n")
        show(replies(t))
        t.sendall(b"QUIT\r\n")
        show(replies(t, 1.0))
    elif case == "bdat":
        body1 = b"Subject: chunked\r\nX-Test: bdat\r\n"
        body2 = b"\r\nsecond chunk\r\n"
        s.sendall(envelope(frm, to) + b"BDAT %d\r\n" % len(body1) + body1 +
                  b"BDAT %d LAST\r\n" % len(body2) + body2 + b"QUIT\r\n")
        show(replies(s))
    elif case == "hold":
        s.sendall(envelope(frm, to) + b"DATA\r\n")
        show(replies(s, 1.0))
        s.sendall(b"Subject: held\r\n\r\nfirst half\r\n")
        print("HOLDING", flush=True)
        time.sleep(float(args[2]))
        s.sendall(b"second half\r\n.\r\n")
        show(replies(s, 3.0))
        s.sendall(b"MAIL FROM:<%s>\r\n" % frm.encode())
        show(replies(s, 3.0))
    elif case == "longline":
        s.sendall(envelope(frm, to) + b"DATA\r\nSubject: long\r\n\r\n" + b"x" * 1500 +
                  b"\r\n.\r\nQUIT\r\n")
        show(replies(s))
    elif case == "longcmd":
        n, end = int(args[0]), b"\n" if args[1:] == ["lf"] else b"\r\n"
        s.sendall(b"EHLO raw.test\r\nNOOP " + b"x" * (n - 5) + end + b"QUIT\r\n")
        show(replies(s))
    s.close()


if __name__ == "__main__":
    main()
