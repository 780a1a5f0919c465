#!/usr/bin/python3
"""Copy the dirty extents of an NBD export into a file, with libnbd.

Usage: nbd_copy_dirty.py URI CONTEXT DEST
Asks the server for metadata context CONTEXT (qemu:dirty-bitmap:NAME), walks
block status over the whole export and, for each extent whose dirty flag (1)
is set, reads it and writes it at the same offset of DEST, an existing file.
Prints the extents copied and the total. A backup client's incremental pass,
with several reads in flight as real clients keep them;
bench/incremental-backup.py uses copy_dirty() too.
"""
import os
import sys

import nbd


CHUNK = 4 << 20     # the largest read asked for at once
DEPTH = 16          # reads in flight, as a real backup client keeps them


def dirty_extents(h, ctx):
    """The (offset, length) extents of @h that @ctx (negotiated) calls dirty."""
    size = h.get_size()
    off = 0
    found = []
    while off < size:
        extents = []

        def cb(meta, start, entries, err):
            if meta == ctx:
                extents.extend(zip(entries[0::2], entries[1::2]))
            return 0

        h.block_status(min(size - off, 1 << 30), off, cb)
        if not extents:
            raise RuntimeError("no extents at %d" % off)
        for length, flags in extents:
            length = min(length, size - off)
            if flags & 1:
                found.append((off, length))
            off += length
    return found


def copy_dirty(h, ctx, fd):
    """Copy the extents of @h (connected, @ctx negotiated) that @ctx calls dirty
    into file descriptor @fd, DEPTH reads of at most CHUNK bytes in flight;
    return the extents copied, in order."""
    extents = dirty_extents(h, ctx)
    todo = [(off + done, min(CHUNK, n - done))
            for off, n in extents for done in range(0, n, CHUNK)]
    todo.reverse()
    inflight = []
    while todo or inflight:
        while todo and len(inflight) < DEPTH:
            off, n = todo.pop()
            buf = nbd.Buffer(n)
            inflight.append((h.aio_pread(buf, off), buf, off))
        h.poll(-1)
        waiting = []
        for cookie, buf, off in inflight:
            if h.aio_command_completed(cookie):
                os.pwrite(fd, buf.to_bytearray(), off)
            else:
                waiting.append((cookie, buf, off))
        inflight = waiting
    return extents


def main():
    uri, ctx, dest = sys.argv[1:4]
    h = nbd.NBD()
    h.add_meta_context(ctx)
    h.connect_uri(uri)
    if not h.can_meta_context(ctx):
        sys.exit("server offers no %s" % ctx)
    fd = os.open(dest, os.O_WRONLY)
    extents = copy_dirty(h, ctx, fd)
    os.close(fd)
    h.shutdown()
    for off, n in extents:
        print("copied %d bytes at %d" % (n, off))
    print("%d bytes copied" % sum(n for _, n in extents))


if __name__ == '__main__':
    main()
