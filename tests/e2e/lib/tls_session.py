"""tls_session.py - an SMTP client session over STARTTLS for the listener tests.

Session(port, source) connects to 127.0.0.1:port from the source address, reads the greeting,
says EHLO, STARTTLS (no certificate check: the listener's test certificate is not the point),
EHLO again; say(line) sends one line ("": nothing, just wait) and returns the last line of its
reply; quit() ends the session politely, whatever state the listener left it in.
"""
import socket
import ssl


class Session:
    def __init__(self, port, source="127.0.0.1", timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.file = self.sock.makefile("rb")
        self.reply()
        self.say("EHLO c")
        self.say("STARTTLS")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="listener.test")
        self.file = self.sock.makefile("rb")
        self.say("EHLO c")

    def reply(self):
        while True:
            line = self.file.readline().decode()
            if line[3:4] != "-":
                return line.strip()

    def say(self, line):
        if line:
            self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def quit(self):
        try:
            self.say("QUIT")
            self.file.read()  # the 221, then the close
        except OSError:
            pass  # the listener had ended the session already
