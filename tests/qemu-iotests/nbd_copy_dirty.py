#!/usr/bin/python3
"""Copy the dirty extents of an NBD export into a file, with libnbd.

Usage: nbd_copy_dirty.py URI CONTEXT DEST
Asks the server for metadata context CONTEXT (qemu:dirty-bitmap:NAME), walks
block status over the whole export and, for each extent whose dirty flag (1)
is set, reads it and writes it at the same offset of DEST, an existing file.
Prints the extents copied and the total. A backup client's incremental pass;
bench/incremental-backup.py uses copy_dirty() too.
"""
import os
import sys

import nbd


def copy_dirty(h, ctx, fd, report=None):
    """Copy the extents of @h (connected, @ctx negotiated) that @ctx calls dirty
    into file descriptor @fd; call report(offset, length) for each; return the
    bytes copied."""
    size = h.get_size()
    off = copied = 0
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
                os.pwrite(fd, h.pread(length, off), off)
                if report:
                    report(off, length)
                copied += length
            off += length
    return copied


def main():
    uri, ctx, dest = sys.argv[1:4]
    h = nbd.NBD()
    h.add_meta_context(ctx)
    h.connect_uri(uri)
    if not h.can_meta_context(ctx):
        sys.exit("server offers no %s" % ctx)
    fd = os.open(dest, os.O_WRONLY)
    copied = copy_dirty(h, ctx, fd,
                        lambda off, n: print("copied %d bytes at %d" % (n, off)))
    os.close(fd)
    h.shutdown()
    print("%d bytes copied" % copied)


if __name__ == '__main__':
    main()
