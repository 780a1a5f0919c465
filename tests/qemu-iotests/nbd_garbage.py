#!/usr/bin/env python3
"""Misbehaving NBD clients for robustness tests (python3 standard library only).

  nbd_garbage.py SOCKET EXPORT
  nbd_garbage.py --flood SOCKET EXPORT  (2000 pipelined 4k writes to the
                                         first MiB, then a flush)
  nbd_garbage.py --hold SOCKET EXPORT   (connect, print "connected", stay until
                                         stdin closes, then report hang-ups)

Each scenario connects, misbehaves, and reports whether the server hung up on
it (it must, or at least refuse, without disturbing other clients).
"""
import socket
import struct
import sys

NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3e889045565a9


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def recv_exact(s, n):
    data = b''
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def hung_up(s):
    """True if the server closes the connection (reading EOF)."""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def greeting(s):
    magic, opt, flags = struct.unpack('>QQH', recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, 'bad greeting'
    return flags


def go(s, name):
    """Fixed newstyle handshake up to transmission with NBD_OPT_GO."""
    greeting(s)
    s.sendall(struct.pack('>I', 3))               # fixed newstyle, no zeroes
    name = name.encode()
    data = struct.pack('>I', len(name)) + name + struct.pack('>H', 0)
    s.sendall(struct.pack('>QII', IHAVEOPT, 7, len(data)) + data)
    while True:
        magic, opt, rtype, length = struct.unpack('>QIII', recv_exact(s, 20))
        assert magic == REPLY_MAGIC
        recv_exact(s, length)
        if rtype == 1:
            return
        assert rtype == 3, 'GO failed: %#x' % rtype


def scenario(name, fn, path, export):
    try:
        s = connect(path)
        result = fn(s, export)
        s.close()
    except Exception as e:         # pylint: disable=broad-except
        result = 'client error: %s' % e
    print('%s: %s' % (name, result))


def garbage_first(s, export):
    greeting(s)
    s.sendall(b'GET / HTTP/1.0\r\n\r\n' * 10)
    return 'server hung up' if hung_up(s) else 'server kept the connection'


def bad_client_flags(s, export):
    greeting(s)
    s.sendall(struct.pack('>I', 0xff00))
    return 'server hung up' if hung_up(s) else 'server kept the connection'


def bad_option_magic(s, export):
    greeting(s)
    s.sendall(struct.pack('>I', 1) + b'X' * 64)
    return 'server hung up' if hung_up(s) else 'server kept the connection'


def unknown_option(s, export):
    greeting(s)
    s.sendall(struct.pack('>I', 1) + struct.pack('>QII', IHAVEOPT, 0x7777, 3) + b'abc')
    magic, opt, rtype, length = struct.unpack('>QIII', recv_exact(s, 20))
    recv_exact(s, length)
    return 'reply %#x to option %#x' % (rtype, opt)


def huge_option(s, export):
    greeting(s)
    s.sendall(struct.pack('>I', 1) + struct.pack('>QII', IHAVEOPT, 7, 0x7fffffff))
    return 'server hung up' if hung_up(s) else 'server kept the connection'


def bad_request_magic(s, export):
    go(s, export)
    s.sendall(b'\xde\xad\xbe\xef' * 16)
    return 'server hung up' if hung_up(s) else 'server kept the connection'


def read_out_of_bounds(s, export):
    go(s, export)
    s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, 1, 1 << 40, 512))
    magic, err, handle = struct.unpack('>IIQ', recv_exact(s, 16))
    return 'simple reply error %d' % err


def unknown_command(s, export):
    go(s, export)
    s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 99, 2, 0, 0))
    magic, err, handle = struct.unpack('>IIQ', recv_exact(s, 16))
    return 'simple reply error %d' % err


def truncated_write(s, export):
    go(s, export)
    s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 1, 3, 0, 65536) + b'\x01' * 100)
    return 'client left mid-write'


def flood(s, export):
    """2000 acknowledged 4k writes sent without reading a reply in between,
    then a flush: every reply must come, in any order, without an error."""
    go(s, export)
    n = 2000
    reqs = b''.join(struct.pack('>IHHQQI', 0x25609513, 0, 1, i, (i % 256) * 4096,
                                4096) + bytes([i % 251]) * 4096 for i in range(n))
    s.sendall(reqs + struct.pack('>IHHQQI', 0x25609513, 0, 3, n, 0, 0))
    errors = 0
    for _ in range(n + 1):
        magic, err, handle = struct.unpack('>IIQ', recv_exact(s, 16))
        errors += err != 0
    return '%d replies, %d errors' % (n + 1, errors)


def hold(path, export):
    s = connect(path)
    go(s, export)
    print('connected', flush=True)
    sys.stdin.read()
    s.settimeout(1)
    print('server hung up' if hung_up(s) else 'still connected', flush=True)


def main():
    if sys.argv[1] == '--hold':
        hold(sys.argv[2], sys.argv[3])
        return
    if sys.argv[1] == '--flood':
        scenario('2000 writes at once', flood, sys.argv[2], sys.argv[3])
        return
    path, export = sys.argv[1], sys.argv[2]
    for name, fn in [('garbage instead of client flags', garbage_first),
                     ('unknown client flags', bad_client_flags),
                     ('bad option magic', bad_option_magic),
                     ('unknown option', unknown_option),
                     ('option length 2G', huge_option),
                     ('bad request magic', bad_request_magic),
                     ('read past the end', read_out_of_bounds),
                     ('unknown command', unknown_command),
                     ('truncated write', truncated_write)]:
        scenario(name, fn, path, export)


if __name__ == '__main__':
    main()
