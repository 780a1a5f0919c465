#!/usr/bin/python3
# NBD client for iotest 248 (libnbd's Python binding, Debian's python3-libnbd):
# keeps many requests of one connection in flight at once.
#
#   nbd_inflight.py URI pipeline OFFSET N SIZE
#       N writes of SIZE bytes from OFFSET (pattern i+1 for the i-th), a flush,
#       then N reads checking them, all submitted before any is waited for
#   nbd_inflight.py URI verify OFFSET N SIZE
#       the reads of "pipeline" alone
#   nbd_inflight.py URI abandon OFFSET N SIZE
#       N writes and N reads submitted, then the connection closed without
#       waiting for a single reply
import sys
import nbd


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def wait_all(h, cookies):
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for c in cookies:
        h.aio_command_completed(c)      # raises if the command failed


def reads(h, off, n, size):
    bufs = [nbd.Buffer(size) for _ in range(n)]
    cookies = [h.aio_pread(bufs[i], off + i * size) for i in range(n)]
    wait_all(h, cookies)
    bad = [i for i in range(n) if bufs[i].to_bytearray() != bytes([i + 1]) * size]
    print(f'{n} reads: {"all match" if not bad else f"mismatch at {bad}"}')


def main():
    uri, cmd, off, n, size = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    h = connect(uri)
    if cmd == 'pipeline':
        cookies = [h.aio_pwrite(bytes([i + 1]) * size, off + i * size)
                   for i in range(n)]
        cookies.append(h.aio_flush())
        wait_all(h, cookies)
        print(f'{n} writes and a flush: done')
        reads(h, off, n, size)
        h.shutdown()
    elif cmd == 'verify':
        reads(h, off, n, size)
        h.shutdown()
    elif cmd == 'abandon':
        for i in range(n):
            h.aio_pwrite(bytes([0xee]) * size, off + i * size)
            h.aio_pread(nbd.Buffer(size), off + i * size)
        print('closing with requests in flight')
        del h       # nbd_close: the socket goes, nothing is waited for


main()
