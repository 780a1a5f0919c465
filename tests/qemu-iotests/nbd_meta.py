#!/usr/bin/env python3
"""An NBD client that shows meta context ids (python3 standard library only).

  nbd_meta.py SOCKET EXPORT [--set] QUERY...

Negotiates structured replies, sends NBD_OPT_LIST_META_CONTEXT with the
queries (none: every context) and prints each context the server names with
the id it gives. With --set it then sends NBD_OPT_SET_META_CONTEXT with the
same queries, enters the transmission phase with NBD_OPT_GO, asks for the
block status of the whole export and prints each chunk: the context id and
its extents (length:flags), or the error and its message. Without --set it
leaves with NBD_OPT_ABORT.
"""
import socket
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
OPT_ABORT, OPT_GO, OPT_STRUCTURED_REPLY = 2, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 9, 10
REP_ACK, REP_META_CONTEXT, INFO_EXPORT = 1, 4, 0
CMD_DISC, CMD_BLOCK_STATUS = 2, 7
REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS = 1, 5


def recv_exact(s, n):
    data = b''
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            raise EOFError('server hung up')
        data += more
    return data


def option(s, opt, data):
    s.sendall(struct.pack('>QII', IHAVEOPT, opt, len(data)) + data)
    replies = []
    while True:
        _magic, _opt, rtype, length = struct.unpack('>QIII', recv_exact(s, 20))
        replies.append((rtype, recv_exact(s, length)))
        if rtype == REP_ACK or rtype & 0x80000000:
            return replies


def meta_request(export, queries):
    data = struct.pack('>I', len(export)) + export + struct.pack('>I', len(queries))
    for q in queries:
        data += struct.pack('>I', len(q)) + q
    return data


def show_contexts(what, replies):
    for rtype, data in replies:
        if rtype == REP_META_CONTEXT:
            ctx_id, = struct.unpack('>I', data[:4])
            print('%s: id %d %s' % (what, ctx_id, data[4:].decode()))
        elif rtype != REP_ACK:
            print('%s: error 0x%x %s' % (what, rtype, data.decode(errors='replace')))


def main():
    args = sys.argv[1:]
    path, export = args[0], args[1].encode()
    do_set = '--set' in args
    queries = [q.encode() for q in args[2:] if q != '--set']

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    recv_exact(s, 18)
    s.sendall(struct.pack('>I', 3))         # fixed newstyle, no zeroes
    option(s, OPT_STRUCTURED_REPLY, b'')
    show_contexts('list', option(s, OPT_LIST_META_CONTEXT,
                                 meta_request(export, queries)))
    if not do_set:
        option(s, OPT_ABORT, b'')
        return
    show_contexts('set', option(s, OPT_SET_META_CONTEXT,
                                meta_request(export, queries)))
    size = 0
    for rtype, data in option(s, OPT_GO, struct.pack('>I', len(export)) + export +
                              struct.pack('>H', 0)):
        if rtype == 3 and struct.unpack('>H', data[:2])[0] == INFO_EXPORT:
            size, = struct.unpack('>Q', data[2:10])
    s.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_BLOCK_STATUS, 1, 0, size))
    while True:
        _magic, flags, rtype, _handle, length = struct.unpack('>IHHQI',
                                                              recv_exact(s, 20))
        data = recv_exact(s, length)
        if rtype == REPLY_TYPE_BLOCK_STATUS:
            ctx_id, = struct.unpack('>I', data[:4])
            extents = [struct.unpack('>II', data[i:i + 8])
                       for i in range(4, len(data), 8)]
            print('status: id %d %s' % (ctx_id, ' '.join('%d:%d' % e for e in extents)))
        elif rtype & 0x8000:
            err, msglen = struct.unpack('>IH', data[:6])
            print('status: error %d %s' % (err, data[6:6 + msglen].decode()))
        if flags & REPLY_FLAG_DONE:
            break
    s.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_DISC, 2, 0, 0))


if __name__ == '__main__':
    main()
