#!/usr/bin/env python3
"""A small QMP client for iotests (python3 standard library only).

Reads a script from stdin and talks to one or more QMP monitors on UNIX sockets,
printing what it sends and every message it receives, with timestamps (and, unless
--no-filter, version numbers) filtered so that the output can be diffed against a
golden file.

  qmp_client.py [--no-filter] [--timeout S] SOCKET < script

Script lines:
  # text              a comment, not printed
  {json...}           send the line, print it, then print the reply to it
  @send TEXT          same, for text that need not be valid JSON
  @send-noreply TEXT  send TEXT and a newline, print it, do not wait
  @sendn N TEXT       send TEXT and a newline, print it and the N replies to it
  @negotiate          send qmp_capabilities quietly (checks the reply)
  @event NAME [k=v]   print buffered events up to one named NAME whose data has
                      the given members (string compare), waiting for it
  @no-events          print any buffered events (after a short settle time)
  @client NAME [SOCK] switch to connection NAME (connects to SOCK, by default the
                      socket given on the command line, and prints the greeting
                      if it is new); the first connection is called "main"
  @connect NAME [SOCK] connect NAME without waiting for its greeting (a monitor
                      serves one client at a time: the next one waits)
  @close              close the current connection
  @sleep SECONDS      sleep
  @burst N JSON       send N copies of JSON in one write, read N replies and
                      print how many succeeded and failed
  @bigline BYTES      send one JSON command line of about BYTES bytes (an unknown
                      argument padded with 'x') and print the reply
  @partial TEXT       send TEXT without a newline and close the connection
  @echo TEXT          print TEXT

Events are buffered and printed only at @event/@no-events, so that the
interleaving of replies and events cannot make the output flaky.
"""

import argparse
import json
import os
import re
import socket
import sys
import time

TS_RE = re.compile(r'"timestamp": \{"seconds": -?\d+, "microseconds": -?\d+\}')
VERSION_RE = re.compile(r'\{"qemu": \{"micro": \d+, "minor": \d+, "major": \d+\}, '
                        r'"package": "[^"]*"\}')


class Conn:
    def __init__(self, path, timeout, out):
        self.out = out
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b''
        self.events = []

    def recv_line(self, timeout=None):
        """One message line (without CRLF), or None at EOF or timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                data = b''
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        if not line.endswith(b'\r'):
            self.out('ERROR: message not terminated by CRLF')
        return line.rstrip(b'\r').decode('utf-8', errors='replace')

    def reply(self, timeout=None):
        """Read until a reply (return/error); buffer events on the way."""
        while True:
            line = self.recv_line(timeout)
            if line is None:
                return None
            try:
                msg = json.loads(line)
            except ValueError:
                self.out('ERROR: server sent invalid JSON: ' + line)
                continue
            if isinstance(msg, dict) and 'event' in msg:
                self.events.append((msg, line))
                continue
            return line

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)


class Client:
    def __init__(self, args):
        self.args = args
        self.conns = {}
        self.cur = None
        self.name = None

    def out(self, text):
        if not self.args.no_filter:
            text = TS_RE.sub('"timestamp": {"seconds": "SECS", "microseconds": "USECS"}',
                             text)
            text = VERSION_RE.sub('VERSION', text)
        print(text, flush=True)

    def connect(self, name, path=None):
        conn = Conn(path or self.args.socket, self.args.timeout, self.out)
        conn.greeted = False
        self.conns[name] = conn
        return conn

    def switch(self, name, path=None):
        if name not in self.conns or self.conns[name] is None:
            self.connect(name, path)
        conn = self.conns[name]
        if not conn.greeted:
            greeting = conn.recv_line()
            self.out(greeting if greeting is not None else 'ERROR: no greeting')
            conn.greeted = True
        self.cur = conn
        self.name = name

    def command(self, text, echo=True):
        if echo:
            self.out(text)
        self.cur.send(text.encode() + b'\n')
        return self.replies(1, echo)

    def replies(self, n, echo=True):
        line = None
        for _ in range(n):
            line = self.cur.reply()
            if line is None:
                self.out('ERROR: no reply (connection closed or timed out)')
                sys.exit(1)
            if echo:
                self.out(line)
        return line

    def wait_event(self, spec):
        name, conds = spec[0], dict(kv.split('=', 1) for kv in spec[1:])
        deadline = time.monotonic() + self.args.timeout
        while True:
            while self.cur.events:
                msg, line = self.cur.events.pop(0)
                self.out(line)
                data = msg.get('data', {})
                if msg['event'] == name and all(
                        str(data.get(k)) == v for k, v in conds.items()):
                    return
            line = self.cur.recv_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                self.out('ERROR: timed out waiting for event ' + ' '.join(spec))
                sys.exit(1)
            msg = json.loads(line)
            if 'event' in msg:
                self.cur.events.append((msg, line))
            else:
                self.out('ERROR: unexpected message: ' + line)

    def flush_events(self):
        while True:
            line = self.cur.recv_line(0.3)
            if line is None:
                break
            self.cur.events.append((json.loads(line), line))
        for _, line in self.cur.events:
            self.out(line)
        self.cur.events = []

    def burst(self, n, text):
        self.out('burst of %d: %s' % (n, text))
        self.cur.send((text + '\n').encode() * n)
        ok = err = 0
        for _ in range(n):
            line = self.cur.reply()
            if line is None:
                self.out('ERROR: only %d replies' % (ok + err))
                return
            if json.loads(line).get('return') is not None:
                ok += 1
            else:
                err += 1
        self.out('%d returned, %d failed' % (ok, err))

    def bigline(self, size):
        head = '{"execute": "query-version", "arguments": {"pad": "'
        tail = '"}}'
        pad = 'x' * max(0, size - len(head) - len(tail))
        self.out('big line of %d bytes' % (len(head) + len(pad) + len(tail)))
        self.cur.send((head + pad + tail + '\n').encode())
        line = self.cur.reply()
        self.out(line if line is not None else 'ERROR: no reply')

    def run(self, lines):
        self.switch('main')
        for raw in lines:
            line = raw.rstrip('\n')
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if not line.startswith('@'):
                self.command(line)
                continue
            word, _, rest = line.partition(' ')
            if word == '@send':
                self.command(rest)
            elif word == '@sendn':
                n, _, text = rest.partition(' ')
                self.out(text)
                self.cur.send(text.encode() + b'\n')
                self.replies(int(n))
            elif word == '@send-noreply':
                self.out(rest)
                self.cur.send(rest.encode() + b'\n')
            elif word == '@negotiate':
                r = self.command('{"execute": "qmp_capabilities"}', echo=False)
                if r is None or '"return"' not in r:
                    self.out('ERROR: negotiation failed: %s' % r)
            elif word == '@event':
                self.wait_event(rest.split())
            elif word == '@no-events':
                self.flush_events()
            elif word == '@client':
                self.switch(*rest.split())
            elif word == '@connect':
                self.connect(*rest.split())
            elif word == '@close':
                self.cur.sock.close()
                self.conns[self.name] = None
            elif word == '@sleep':
                time.sleep(float(rest))
            elif word == '@burst':
                n, _, text = rest.partition(' ')
                self.burst(int(n), text)
            elif word == '@bigline':
                self.bigline(int(rest))
            elif word == '@partial':
                self.out('partial: ' + rest)
                self.cur.send(rest.encode())
                self.cur.sock.close()
                self.conns[self.name] = None
            elif word == '@echo':
                self.out(rest)
            else:
                self.out('ERROR: unknown directive ' + word)
                return 1
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--no-filter', action='store_true')
    p.add_argument('--timeout', type=float, default=30.0)
    p.add_argument('socket')
    args = p.parse_args()
    return Client(args).run(sys.stdin.readlines())


if __name__ == '__main__':
    sys.exit(main())
