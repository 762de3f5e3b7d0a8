#!/usr/bin/env python3
"""sink.py - the scripted SMTP peer that sluice's end-to-end tests and benchmarks deliver to.

Job: accept SMTP on several loopback addresses (one port), misbehave exactly as a JSON script
says, and record what the client did: sessions and peak concurrency per (client source IP,
listening IP), messages, recipients, deliveries per connection, protocol mistakes.  Stats go
to a JSON file (atomic rename) every 100 ms when changed and at exit; accepted messages can be
kept one file each.  Trust boundary: the client is the program under test, so anything it
sends is handled without crashing the sink (bounded lines, any bytes); the script and the
command line come from the test and are trusted.

Usage:
  sink.py --listen IP:PORT [--listen IP:PORT ...] [--script FILE] [--stats FILE]
          [--maildir DIR] [--tls-cert PEM --tls-key PEM] [--hostname NAME] [--timeline]
  Every --listen must use the same port; PORT 0 lets the sink pick one free on all the
  addresses.  "READY port=N" is printed on stdout once every listener is bound.
  SIGHUP re-reads the script (a bad script is reported on stderr and the old one kept);
  SIGTERM/SIGINT close everything, write the final stats and exit 0.

Script (JSON object).  Keys that are "*" or an IP address hold the rule for that listening
address; every other top-level key belongs to the default rule ("*").  A listening address's
rule is the default rule with its own keys laid over it (stall/reply dicts are merged).
  pipelining, enhancedstatuscodes, 8bitmime: bool (default true); smtputf8 (default false)
  chunking: bool      advertise CHUNKING and take BDAT (RFC 3030; default false): a message
                      ends at its "BDAT n LAST", whose reply is the data_end phase's
  size: N             advertise "SIZE N" (default 0 = no limit); a message or SIZE= over N
                      gets 552; false = do not advertise SIZE
  extensions: [..]    extra EHLO keywords
  starttls: bool      advertise STARTTLS (needs --tls-cert/--tls-key)
  tls_fault: "garbage" | "drop" | "stall"   after the 220 to STARTTLS, instead of the
                      handshake: a non-TLS line (once the client's first TLS bytes are
                      in) and a close; a close; or read (never
                      answering) until the client hangs up (event "tls_fault:WHAT")
  hostname: NAME      in the banner and the EHLO reply
  stall: {phase: s}   wait s seconds before answering that phase
  reply: {phase: "451 4.3.0 try later"}  answer the phase with this text ("\\n" separates the
                      lines of a multi-line reply); or {"text": "...", "times": N} to do it
                      only for the first N times (counted per rule, reset on SIGHUP)
  rcpt: [{"match": REGEX, "reply": TEXT, "stall": s, "times": N}]  per recipient (re.search,
                      case-insensitive, on the address without <>); the first match applies
  drop | garbage | trickle | endless | hugeline | badcode: phase or [phases]
                      drop: close without a reply; garbage: a non-SMTP line instead of the
                      reply; trickle: the reply one byte per second; endless: "250-" lines
                      until the client hangs up; hugeline: 1 MB without newline; badcode:
                      "999 what"
  ehlo_reject: bool   5xx to EHLO, HELO accepted
  hold: s             every final reply to DATA (after the dot) waits s more seconds, so the
                      session stays open and concurrency is observable
  max_messages: N     after N accepted messages on a connection, MAIL gets 421 and a close
  max_rcpts: N        more than N recipients in one transaction get 452 4.5.3
Phases: greeting ehlo starttls mail_from rcpt_to data data_body data_end rset noop quit.
("ehlo" is EHLO and HELO; "data" is the 354; "data_body" is only for drop/stall: after the
first line of the body; "data_end" is the reply to the final dot.)

Stats (JSON):
  {"pid", "listen": ["IP:PORT", ...], "started", "updated" (epoch seconds),
   "total": C, "pairs": {"SRC>DST": C}, "by_dest": {DST: C}, "by_source": {SRC: C},
   "per_connection": {"N": connections that delivered N messages},
   "helo": {EHLO/HELO name: count}, "events": {"stall:rcpt_to": n, "reply:mail_from": n,
   "drop:data_end": n, "rcpt_rule:REGEX": n, ...}, "protocol_errors": {"unadvertised_pipelining",
   "pipelining_not_last", "bad_sequence", "unknown_command", "line_too_long",
   "unadvertised_smtputf8" (MAIL with SMTPUTF8 where it was not offered: answered 555),
   "unadvertised_dsn" (RET, ENVID, NOTIFY or ORCPT where "DSN" is not among the script's
   extensions: answered 555): n},
   "script_loads", "script_errors"}
  With --timeline, also "timeline": {"N": {"src", "dst", "events": [[WHAT, epoch seconds], ...]}}
  for every session N (numbered from 1 in accept order), at most TIMELINE_MAX events each:
  "accept"; "cmd:VERB" as each command line arrives (VERB upper-cased, "?" when unknown);
  "body_end" when the final dot arrives; "stall:PHASE" as a stall begins; "sent:PHASE" once a
  phase's reply is written (or queued behind a pipelined command); "drop:PHASE" when the sink
  closes by script; "gone" when the client hangs up (EOF or reset, even during a stall);
  "closed" when the session ends.  For timing tests: e.g. "gone" minus "cmd:MAIL" is how long
  the client waited for a stalled MAIL reply.  Off by default (benchmarks open many sessions).
  C = {"sessions" (open now), "peak" (most open at once), "connections", "transactions"
  (MAIL accepted), "messages", "recipients" (accepted), "max_per_connection" (most messages
  accepted on one connection), "rcpt_rejected", "rejected" (final reply not 2xx), "dropped",
  "tls"}.  A session is open from the accept until the client hangs up (EOF, even during a
  stall) or the sink closes it; "messages" counts a message once its 250 is decided, and the
  message file exists before the client reads that 250.
"""

import argparse
import asyncio
import concurrent.futures
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import sys
import time

PHASES = ("greeting", "ehlo", "starttls", "mail_from", "rcpt_to", "data", "data_body",
          "data_end", "rset", "noop", "quit")
ACTIONS = ("drop", "garbage", "trickle", "endless", "hugeline", "badcode")
DEFAULT_RULE = {
    "pipelining": True, "enhancedstatuscodes": True, "8bitmime": True, "smtputf8": False,
    "size": 0, "extensions": [], "starttls": False, "hostname": None,
    "stall": {}, "reply": {}, "rcpt": [], "ehlo_reject": False, "hold": 0,
    "max_messages": 0, "max_rcpts": 0, "tls_fault": None, "chunking": False,
    **{a: [] for a in ACTIONS},
}
LINE_LIMIT = 4 << 20
TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LAST_ACK = 7, 8, 9  # Linux tcp_states.h
TIMELINE_MAX = 256  # events kept per session with --timeline
GARBAGE = b"HTTP/1.1 400 Bad Request\r\n"
HUGELINE = b"x" * (1 << 20)


class Close(Exception):
    """The session ends now (client gone, scripted drop, QUIT)."""


def is_target(key):
    if key == "*":
        return True
    try:
        ipaddress.ip_address(key)
        return True
    except ValueError:
        return False


def as_set(value):
    if isinstance(value, str):
        return {value}
    return set(value or [])


def layer(base, top):
    """base with top laid over it; the stall and reply dicts are merged key by key."""
    out = dict(base)
    for k, v in top.items():
        if k in ("stall", "reply") and isinstance(v, dict):
            out[k] = {**base.get(k, {}), **v}
        else:
            out[k] = v
    return out


class Rule:
    """One listening address's behaviour, normalised from the script."""

    def __init__(self, name, raw):
        unknown = set(raw) - set(DEFAULT_RULE)
        if unknown:
            raise ValueError(f"rule {name}: unknown keys {sorted(unknown)}")
        self.name = name
        self.__dict__.update({k: raw[k] for k in DEFAULT_RULE if k not in ACTIONS})
        for a in ACTIONS:
            setattr(self, a, as_set(raw[a]))
        for phase in set(self.stall) | set(self.reply) | set().union(*(getattr(self, a) for a in ACTIONS)):
            if phase not in PHASES:
                raise ValueError(f"rule {name}: unknown phase {phase!r}")
        self.rcpt = [dict(r, rx=re.compile(r.get("match", ""), re.I)) for r in self.rcpt]


class Script:
    """The rules in force; reload() swaps them atomically (the old ones stay on error)."""

    def __init__(self, path):
        self.path = path
        self.rules, self.default, self.used = {}, Rule("*", DEFAULT_RULE), {}
        self.loads = self.errors = 0
        self.reload()

    def reload(self):
        try:
            raw = {}
            if self.path:
                with open(self.path) as f:
                    raw = json.load(f)
            if not isinstance(raw, dict):
                raise ValueError("the script is not a JSON object")
            default_keys = {k: v for k, v in raw.items() if not is_target(k)}
            base = layer(layer(DEFAULT_RULE, default_keys), raw.get("*", {}))
            rules = {k: Rule(k, layer(base, v)) for k, v in raw.items() if is_target(k) and k != "*"}
            self.rules, self.default, self.used = rules, Rule("*", base), {}
            self.loads += 1
        except (OSError, ValueError, TypeError, re.error) as e:
            self.errors += 1
            print(f"sink: script {self.path}: {e}; keeping the previous one", file=sys.stderr, flush=True)

    def rule_for(self, ip):
        return self.rules.get(ip, self.default)

    def take(self, rule, what, times):
        """True while a rule limited to `times` uses may still apply (None = always)."""
        if times is None:
            return True
        key = (rule.name, what)
        n = self.used.get(key, 0)
        if n >= times:
            return False
        self.used[key] = n + 1
        return True


COUNTS = ("sessions", "peak", "connections", "messages", "recipients", "max_per_connection",
          "transactions", "rcpt_rejected", "rejected", "dropped", "tls")


class Stats:
    """Counters per (source, dest) pair, per dest, per source and in total; dumped as JSON."""

    def __init__(self, path, listen):
        self.path, self.dirty = path, True
        self.start = time.time()
        self.total = dict.fromkeys(COUNTS, 0)
        self.pairs, self.by_dest, self.by_source = {}, {}, {}
        self.per_connection, self.helo, self.events, self.protocol = {}, {}, {}, {}
        self.listen = listen
        self.timeline = None  # {conn: {"src", "dst", "events"}} with --timeline

    def mark(self, conn, src, dst, what):
        """One timestamped event of session conn (only with --timeline)."""
        if self.timeline is None:
            return
        t = self.timeline.setdefault(str(conn), {"src": src, "dst": dst, "events": []})
        if len(t["events"]) < TIMELINE_MAX:
            t["events"].append([what, time.time()])
            self.dirty = True

    def buckets(self, src, dst):
        return (self.total,
                self.pairs.setdefault(f"{src}>{dst}", dict.fromkeys(COUNTS, 0)),
                self.by_dest.setdefault(dst, dict.fromkeys(COUNTS, 0)),
                self.by_source.setdefault(src, dict.fromkeys(COUNTS, 0)))

    def add(self, src, dst, what, n=1):
        for b in self.buckets(src, dst):
            b[what] += n
        self.dirty = True

    def top(self, src, dst, what, value):
        for b in self.buckets(src, dst):
            b[what] = max(b[what], value)
        self.dirty = True

    def opened(self, src, dst):
        for b in self.buckets(src, dst):
            b["sessions"] += 1
            b["connections"] += 1
            b["peak"] = max(b["peak"], b["sessions"])
        self.dirty = True

    def closed(self, delivered):
        k = str(delivered)
        self.per_connection[k] = self.per_connection.get(k, 0) + 1

    def bump(self, table, key):
        table[key] = table.get(key, 0) + 1
        self.dirty = True

    def snapshot(self, script):
        return {"pid": os.getpid(), "listen": self.listen, "started": self.start,
                "updated": time.time(), "total": self.total, "pairs": self.pairs,
                "by_dest": self.by_dest, "by_source": self.by_source,
                "per_connection": self.per_connection, "helo": self.helo,
                "events": self.events, "protocol_errors": self.protocol,
                "script_loads": script.loads, "script_errors": script.errors,
                **({"timeline": self.timeline} if self.timeline is not None else {})}

    def write(self, script):
        if not self.path:
            return
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.snapshot(script), f, sort_keys=True)
        os.replace(tmp, self.path)
        self.dirty = False


class Maildir:
    """Keeps accepted messages: DIR/NNNNNNNN.msg = envelope JSON line + un-stuffed DATA.
    Files are written by a few threads so a slow disk does not stall every session; each
    is complete (renamed into place) before the client gets its 250."""

    def __init__(self, path):
        self.path, self.seq = path, 0
        self.pool = concurrent.futures.ThreadPoolExecutor(4) if path else None
        if path:
            os.makedirs(path, exist_ok=True)

    async def store(self, envelope, body):
        self.seq += 1
        if self.path:
            envelope["seq"] = self.seq
            await asyncio.get_running_loop().run_in_executor(
                self.pool, self.write, self.seq, envelope, body)

    def write(self, seq, envelope, body):
        tmp = os.path.join(self.path, f".tmp.{seq}")
        with open(tmp, "wb") as f:
            f.write(json.dumps(envelope, sort_keys=True).encode() + b"\n" + body)
        os.replace(tmp, os.path.join(self.path, f"{seq:08d}.msg"))

    def close(self):
        if self.pool:
            self.pool.shutdown(wait=True)


class Reply:
    """What a phase will answer: kind is 'text' or one of ACTIONS."""

    def __init__(self, kind, text=""):
        self.kind, self.text = kind, text

    @property
    def ok(self):
        return self.kind in ("text", "trickle") and self.text[:1] in ("2", "3")


def addr_of(arg):
    """The address inside <...> of a MAIL FROM:/RCPT TO: argument, and the parameters."""
    m = re.match(r"\s*<([^>]*)>\s*(.*)$", arg)
    if m:
        return m.group(1), m.group(2).split()
    parts = arg.split()
    return (parts[0] if parts else ""), parts[1:]


class SinkProtocol(asyncio.StreamReaderProtocol):
    """Tells the session the moment the client hangs up, even while the session sleeps in a
    stall: a session counts as open only until then, so a client that times out and
    reconnects is never seen twice at once."""

    def __init__(self, reader, cb):
        super().__init__(reader, cb)
        self.gone = False
        self.on_gone = None

    def client_gone(self):
        self.gone = True
        if self.on_gone:
            self.on_gone()

    def eof_received(self):
        self.client_gone()
        return super().eof_received()

    def connection_lost(self, exc):
        self.client_gone()
        super().connection_lost(exc)


class Session:
    """One SMTP connection, answered in order (pipelining-correct)."""

    def __init__(self, sink, reader, writer, src, dst):
        self.sink, self.reader, self.writer = sink, reader, writer
        self.src, self.dst = src, dst
        self.open = False
        self.hung_up = False
        self.out = []
        self.helo = None
        self.esmtp = self.tls = False
        self.delivered = 0
        self.mail = None
        self.rcpts = []
        self.rcpt_params = []
        self.chunks = []  # BDAT chunks of the message under way
        self.conn = sink.next_conn()

    # --- plumbing
    def rule(self):
        return self.sink.script.rule_for(self.dst)

    def event(self, what, phase):
        self.sink.stats.bump(self.sink.stats.events, f"{what}:{phase}")
        if what in ("stall", "drop"):
            self.mark(f"{what}:{phase}")

    def mark(self, what):
        self.sink.stats.mark(self.conn, self.src, self.dst, what)

    def protocol_error(self, what):
        self.sink.stats.bump(self.sink.stats.protocol, what)

    def buffered(self):
        return len(getattr(self.reader, "_buffer", b""))

    async def send(self, data):
        """Write now, after anything queued."""
        self.out.append(data)
        await self.flush()

    async def reply_soon(self, data):
        """Queue a reply: sent at once, unless the client has already pipelined the next
        command; then it leaves with that command's reply, in one write, as a real server's
        would.  Anything that waits (a stall, a drop, a misbehaviour) flushes first, so the
        client always sees each reply's timing in its own phase."""
        self.out.append(data)
        if b"\n" not in getattr(self.reader, "_buffer", b""):
            await self.flush()

    async def flush(self):
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.writer.write(data)
            await self.writer.drain()

    def text(self, code, enh, words):
        if self.rule().enhancedstatuscodes and enh:
            return f"{code} {enh} {words}"
        return f"{code} {words}"

    async def read_line(self):
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise Close()
        except asyncio.LimitOverrunError:
            self.protocol_error("line_too_long")
            await self.send(b"500 5.5.6 Line too long\r\n")
            raise Close()
        return line.rstrip(b"\r\n").decode("utf-8", "replace")

    # --- answering a phase as the script says
    async def prepare(self, phase, normal, override=None, delay=0.0):
        """Wait the scripted stall, then decide the answer (drop raises Close)."""
        rule, script = self.rule(), self.sink.script
        delay += float(rule.stall.get(phase, 0))
        if delay > 0 or phase in rule.drop:
            await self.flush()
        if delay > 0:
            self.event("stall", phase)
            await asyncio.sleep(delay)
        for action in ACTIONS:
            if phase in getattr(rule, action) and action != "trickle":
                self.event(action, phase)
                if action == "drop":
                    self.sink.stats.add(self.src, self.dst, "dropped")
                    raise Close()
                return Reply(action)
        text = override
        scripted = rule.reply.get(phase)
        if text is None and scripted is not None:
            times = scripted.get("times") if isinstance(scripted, dict) else None
            if script.take(rule, "reply:" + phase, times):
                text = scripted["text"] if isinstance(scripted, dict) else scripted
                self.event("reply", phase)
        text = normal if text is None else text
        if phase in rule.trickle:
            self.event("trickle", phase)
            return Reply("trickle", text)
        return Reply("text", text)

    async def emit(self, reply):
        if reply.kind == "text":
            await self.reply_soon(self.wire(reply.text))
        elif reply.kind == "trickle":
            for b in self.wire(reply.text):
                await self.send(bytes([b]))
                await asyncio.sleep(1)
        elif reply.kind == "garbage":
            await self.send(GARBAGE)
        elif reply.kind == "badcode":
            await self.send(b"999 what\r\n")
        elif reply.kind == "hugeline":
            await self.send(HUGELINE)
            while await self.reader.read(65536):
                pass
            raise Close()
        elif reply.kind == "endless":
            line = b"250-this reply never ends\r\n" * 64
            while True:
                await self.send(line)
                await asyncio.sleep(0.001)

    async def answer(self, phase, normal, override=None, delay=0.0):
        reply = await self.prepare(phase, normal, override, delay)
        await self.emit(reply)
        self.mark(f"sent:{phase}")
        return reply.ok

    @staticmethod
    def wire(text):
        return ("\r\n".join(text.splitlines()) + "\r\n").encode()

    # --- the session
    def client_gone(self):
        """The client hung up: noted once in the timeline; the session is no longer open."""
        if not self.hung_up:
            self.hung_up = True
            self.mark("gone")
        self.end()

    def end(self):
        """The session stops counting as open (once: client gone or sink closing)."""
        self.sink.live.discard(self)
        if self.open:
            self.open = False
            self.sink.stats.add(self.src, self.dst, "sessions", -1)

    def peer_closed(self):
        """Has the client sent its FIN (TCP CLOSE_WAIT or later), whatever data is still
        unread?  The event loop may not have delivered that EOF yet."""
        sock = self.writer.get_extra_info("socket")
        try:
            state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        except (OSError, AttributeError):
            return False
        return state in (TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSE)

    def settle_others(self):
        """Before a new session counts, every session whose client already hung up stops
        counting: under load the loop may see the new accept before an older EOF, and a
        client that closes one connection then opens another was never at two at once."""
        for other in list(self.sink.live):
            if other.peer_closed():
                other.client_gone()

    async def run(self, protocol):
        stats = self.sink.stats
        self.settle_others()
        self.sink.live.add(self)
        stats.opened(self.src, self.dst)
        self.mark("accept")
        self.open = True
        protocol.on_gone = self.client_gone
        if protocol.gone:
            self.client_gone()
        try:
            host = self.rule().hostname or self.sink.hostname
            if not await self.answer("greeting", f"220 {host} ESMTP sink"):
                await self.drain_until_close()
            while True:
                await self.command(await self.read_line())
        except (Close, ConnectionError, asyncio.CancelledError, ssl.SSLError, OSError):
            pass
        except Exception as e:  # a sink bug must show, but not stop the other sessions
            print(f"sink: session {self.conn}: {e!r}", file=sys.stderr, flush=True)
            self.protocol_error("sink_bug")
        finally:
            self.end()
            self.mark("closed")
            stats.closed(self.delivered)
            if self.out:  # a queued reply (e.g. the 221) still goes out before the close
                self.writer.write(b"".join(self.out))
            self.writer.close()

    async def drain_until_close(self):
        """After a refused greeting, answer every command 503 until the client leaves."""
        while True:
            line = await self.read_line()
            if line.upper().startswith("QUIT"):
                await self.send(b"221 2.0.0 Bye\r\n")
                raise Close()
            await self.send(b"503 5.5.1 Bad sequence of commands\r\n")

    async def command(self, line):
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        known = ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT",
                 "STARTTLS")
        self.mark("cmd:" + (verb if verb in known else "?"))
        if verb == "BDAT":
            pass  # its chunk follows the command line: not pipelining
        elif not self.esmtp_pipelining() and self.buffered():
            self.protocol_error("unadvertised_pipelining")
        elif verb in ("EHLO", "HELO", "DATA", "STARTTLS", "NOOP", "QUIT") and self.buffered():
            self.protocol_error("pipelining_not_last")
        handler = {"EHLO": self.ehlo, "HELO": self.ehlo, "MAIL": self.mail_from,
                   "RCPT": self.rcpt_to, "DATA": self.data, "BDAT": self.bdat, "RSET": self.rset,
                   "NOOP": self.noop, "QUIT": self.quit, "STARTTLS": self.starttls}.get(verb)
        if handler is None:
            self.protocol_error("unknown_command")
            await self.send(self.wire(self.text(500, "5.5.2", "Command not recognized")))
            return
        await handler(verb, arg.strip())

    def esmtp_pipelining(self):
        return self.esmtp and self.rule().pipelining

    def unadvertised_dsn(self, params, names):
        """RFC 3461 parameters sent to a server that did not offer DSN (a protocol error)."""
        if "DSN" in (e.upper() for e in self.rule().extensions):
            return False
        if any(p.upper().startswith(names) for p in params):
            self.protocol_error("unadvertised_dsn")
            return True
        return False

    def extensions(self):
        rule = self.rule()
        ext = []
        if rule.pipelining:
            ext.append("PIPELINING")
        if rule.size is not False and rule.size is not None:
            ext.append(f"SIZE {int(rule.size)}")
        if rule.enhancedstatuscodes:
            ext.append("ENHANCEDSTATUSCODES")
        if getattr(rule, "8bitmime"):
            ext.append("8BITMIME")
        if rule.smtputf8:
            ext.append("SMTPUTF8")
        if rule.starttls and self.sink.tls and not self.tls:
            ext.append("STARTTLS")
        if rule.chunking:
            ext.append("CHUNKING")
        return ext + list(rule.extensions)

    async def ehlo(self, verb, arg):
        stats, rule = self.sink.stats, self.rule()
        stats.bump(stats.helo, arg)
        host = rule.hostname or self.sink.hostname
        if verb == "EHLO" and rule.ehlo_reject:
            await self.answer("ehlo", self.text(502, "5.5.1", "EHLO not supported; use HELO"))
            return
        if verb == "EHLO":
            lines = [f"250-{host} greets {arg}"] + [f"250-{e}" for e in self.extensions()]
            lines[-1] = "250 " + lines[-1][4:]
            normal = "\n".join(lines)
        else:
            normal = f"250 {host}"
        if await self.answer("ehlo", normal):
            self.helo, self.esmtp = arg, verb == "EHLO"
            self.mail, self.rcpts = None, []

    async def starttls(self, verb, arg):
        if not (self.rule().starttls and self.sink.tls) or self.tls:
            await self.send(self.wire(self.text(502, "5.5.1", "STARTTLS not available")))
            return
        if await self.answer("starttls", self.text(220, "2.0.0", "Ready to start TLS")):
            await self.flush()
            if self.rule().tls_fault:
                await self.tls_fault(self.rule().tls_fault)
            await self.writer.start_tls(self.sink.tls)
            self.tls, self.helo, self.esmtp = True, None, False
            self.mail, self.rcpts = None, []
            self.sink.stats.add(self.src, self.dst, "tls")

    async def tls_fault(self, fault):
        """A broken handshake as the script says; the session ends here."""
        self.event("tls_fault", fault)
        if fault == "garbage":  # once the ClientHello is in: a broken handshake, not a reply
            await asyncio.wait_for(self.reader.read(4096), 10)
            await self.send(GARBAGE)
        elif fault == "stall":
            while await self.reader.read(4096):
                pass
        raise Close()

    async def mail_from(self, verb, arg):
        rule = self.rule()
        if not arg.upper().startswith("FROM:"):
            await self.send(self.wire(self.text(501, "5.5.4", "Syntax: MAIL FROM:<address>")))
            return
        if self.helo is None or self.mail is not None:
            self.protocol_error("bad_sequence")
            await self.send(self.wire(self.text(503, "5.5.1", "Bad sequence of commands")))
            return
        address, params = addr_of(arg[5:])
        if rule.max_messages and self.delivered >= rule.max_messages:
            await self.send(self.wire(self.text(421, "4.7.0", "Too many messages on this connection")))
            raise Close()
        override = None
        declared = [p for p in params if p.upper().startswith("SIZE=")]
        if any(p.upper() == "SMTPUTF8" for p in params) and not rule.smtputf8:
            self.protocol_error("unadvertised_smtputf8")
            override = self.text(555, "5.5.4", "SMTPUTF8 not supported")
        elif self.unadvertised_dsn(params, ("RET=", "ENVID=")):
            override = self.text(555, "5.5.4", "DSN not supported")
        elif declared and rule.size and not declared[0][5:].isdigit():
            override = self.text(501, "5.5.4", "Bad SIZE parameter")
        elif declared and rule.size and int(declared[0][5:]) > rule.size:
            override = self.text(552, "5.3.4", "Message size exceeds fixed limit")
        if await self.answer("mail_from", self.text(250, "2.1.0", "Ok"), override):
            self.mail, self.mail_params, self.rcpts, self.rcpt_params = address, params, [], []
            self.sink.stats.add(self.src, self.dst, "transactions")

    async def rcpt_to(self, verb, arg):
        rule, script = self.rule(), self.sink.script
        if not arg.upper().startswith("TO:"):
            await self.send(self.wire(self.text(501, "5.5.4", "Syntax: RCPT TO:<address>")))
            return
        if self.mail is None:
            self.protocol_error("bad_sequence")
            await self.send(self.wire(self.text(503, "5.5.1", "Need MAIL before RCPT")))
            return
        address, params = addr_of(arg[3:])
        override, delay = None, 0.0
        if rule.max_rcpts and len(self.rcpts) >= rule.max_rcpts:
            override = self.text(452, "4.5.3", "Too many recipients")
        if self.unadvertised_dsn(params, ("NOTIFY=", "ORCPT=")):
            override = self.text(555, "5.5.4", "DSN not supported")
        for r in rule.rcpt:
            if r["rx"].search(address) and script.take(rule, "rcpt:" + r.get("match", ""), r.get("times")):
                override = r.get("reply", override)
                delay = float(r.get("stall", 0))
                self.event("rcpt_rule", r.get("match", ""))
                break
        if await self.answer("rcpt_to", self.text(250, "2.1.5", "Ok"), override, delay):
            self.rcpts.append(address)
            self.rcpt_params.append(params)
        else:
            self.sink.stats.add(self.src, self.dst, "rcpt_rejected")

    async def data(self, verb, arg):
        if self.mail is None or not self.rcpts:
            self.protocol_error("bad_sequence")
            await self.send(self.wire(self.text(503, "5.5.1", "Need RCPT before DATA")))
            return
        if not await self.answer("data", "354 End data with <CR><LF>.<CR><LF>"):
            return
        body = await self.read_body()
        await self.data_end(body)

    async def bdat(self, verb, arg):
        """BDAT n [LAST]: the n octets are read whatever the verdict, to stay in step."""
        words = arg.split()
        if not self.rule().chunking or not words or not words[0].isdigit() or \
                len(words) > 2 or (len(words) == 2 and words[1].upper() != "LAST"):
            self.protocol_error("bad_sequence")
            await self.send(self.wire(self.text(501, "5.5.4", "Syntax: BDAT size [LAST]")))
            raise Close()  # the chunk's length is unknown: out of step
        try:
            chunk = await self.reader.readexactly(int(words[0]))
        except asyncio.IncompleteReadError:
            raise Close()
        if self.mail is None or not self.rcpts:
            self.protocol_error("bad_sequence")
            self.chunks = []
            await self.send(self.wire(self.text(503, "5.5.1", "Need RCPT before BDAT")))
            return
        self.chunks.append(chunk)
        if len(words) == 1:
            await self.reply_soon(self.wire(self.text(250, "2.0.0", f"{len(chunk)} octets received")))
            return
        body, self.chunks = b"".join(self.chunks), []
        self.mark("body_end")
        await self.data_end(body)

    async def read_body(self):
        """The DATA lines up to the final dot, un-dot-stuffed, line endings kept."""
        rule = self.rule()
        chunks, at_start, first = [], True, True
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as e:
                line = await self.reader.readexactly(e.consumed)
            except asyncio.IncompleteReadError:
                raise Close()
            complete = line.endswith(b"\n")
            if at_start and line in (b".\r\n", b".\n"):
                self.mark("body_end")
                return b"".join(chunks)
            if at_start and line.startswith(b"."):
                line = line[1:]
            chunks.append(line)
            at_start = complete
            if first:
                first = False
                if "data_body" in rule.drop:
                    self.event("drop", "data_body")
                    self.sink.stats.add(self.src, self.dst, "dropped")
                    raise Close()
                if rule.stall.get("data_body"):
                    self.event("stall", "data_body")
                    await asyncio.sleep(float(rule.stall["data_body"]))

    async def data_end(self, body):
        rule, stats = self.rule(), self.sink.stats
        override = None
        if rule.size and len(body) > rule.size:
            override = self.text(552, "5.3.4", "Message size exceeds fixed limit")
        queue_id = f"C{self.conn}M{self.delivered + 1}"
        reply = await self.prepare("data_end", self.text(250, "2.0.0", f"Ok: queued as {queue_id}"),
                                   override, float(rule.hold or 0))
        if reply.ok:
            self.delivered += 1
            await self.sink.maildir.store(
                {"src": self.src, "dst": self.dst, "helo": self.helo, "tls": self.tls,
                 "conn": self.conn, "n_on_conn": self.delivered, "mail_from": self.mail,
                 "mail_params": self.mail_params, "rcpt_to": self.rcpts,
                 "rcpt_params": self.rcpt_params, "size": len(body),
                 "time": time.time()}, body)
            stats.add(self.src, self.dst, "messages")
            stats.add(self.src, self.dst, "recipients", len(self.rcpts))
            stats.top(self.src, self.dst, "max_per_connection", self.delivered)
        else:
            stats.add(self.src, self.dst, "rejected")
        self.mail, self.rcpts = None, []
        await self.emit(reply)
        self.mark("sent:data_end")

    async def rset(self, verb, arg):
        await self.answer("rset", self.text(250, "2.0.0", "Ok"))
        self.mail, self.rcpts, self.chunks = None, [], []

    async def noop(self, verb, arg):
        await self.answer("noop", self.text(250, "2.0.0", "Ok"))

    async def quit(self, verb, arg):
        await self.answer("quit", self.text(221, "2.0.0", "Bye"))
        raise Close()


class Sink:
    """The listeners, the script, the stats and the live sessions."""

    def __init__(self, args):
        self.args = args
        self.hostname = args.hostname
        self.script = Script(args.script)
        self.maildir = Maildir(args.maildir)
        self.tls = None
        if args.tls_cert:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(args.tls_cert, args.tls_key)
        self.conns = 0
        self.live = set()  # sessions counted as open
        self.tasks = set()
        self.servers = []
        self.stats = None

    def protocol(self):
        return SinkProtocol(asyncio.StreamReader(limit=LINE_LIMIT), self.handle)

    def next_conn(self):
        self.conns += 1
        return self.conns

    async def handle(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            src = writer.get_extra_info("peername")[0]
            dst = writer.get_extra_info("sockname")[0]
            await Session(self, reader, writer, src, dst).run(writer.transport.get_protocol())
        finally:
            self.tasks.discard(task)

    async def bind_all(self, addrs, port):
        servers = []
        try:
            for a in addrs:
                s = await asyncio.get_running_loop().create_server(
                    self.protocol, a, port, backlog=4096, reuse_address=True)
                port = s.sockets[0].getsockname()[1]
                servers.append(s)
            return servers, port
        except OSError:
            for s in servers:
                s.close()
            raise

    async def listen(self):
        addrs, ports = [], set()
        for item in self.args.listen:
            host, _, port = item.rpartition(":")
            addrs.append(host.strip("[]"))
            ports.add(int(port))
        if len(ports) != 1:
            raise SystemExit("sink: every --listen must use the same port")
        port = ports.pop()
        for attempt in range(50):
            try:
                self.servers, port = await self.bind_all(addrs, port)
                return addrs, port
            except OSError:
                if not self.args.port_zero or attempt == 49:
                    raise
                port = 0
        raise SystemExit("sink: no port free on every address")

    async def write_stats_loop(self):
        while True:
            await asyncio.sleep(0.1)
            if self.stats.dirty:
                self.stats.write(self.script)

    async def main(self):
        self.args.port_zero = any(item.endswith(":0") for item in self.args.listen)
        addrs, port = await self.listen()
        self.stats = Stats(self.args.stats, [f"{a}:{port}" for a in addrs])
        if self.args.timeline:
            self.stats.timeline = {}
        self.stats.write(self.script)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        writer = asyncio.create_task(self.write_stats_loop())
        print(f"READY port={port}", flush=True)
        await stop.wait()
        for s in self.servers:
            s.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        writer.cancel()
        self.maildir.close()
        self.stats.write(self.script)

    def reload(self):
        self.script.reload()
        self.stats.dirty = True


def parse_args(argv):
    p = argparse.ArgumentParser(description="scripted SMTP sink for sluice's tests")
    p.add_argument("--listen", action="append", required=True, metavar="IP:PORT")
    p.add_argument("--script")
    p.add_argument("--stats")
    p.add_argument("--maildir")
    p.add_argument("--hostname", default="sink.test")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--timeline", action="store_true",
                   help="keep every session's timestamped events in the stats")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    asyncio.run(Sink(args).main())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
