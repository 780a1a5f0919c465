#!/usr/bin/python3
"""Copy the dirty extents of an NBD export into a file, with libnbd.

Usage: nbd_copy_dirty.py URI CONTEXT DEST
Asks the server for metadata context CONTEXT (qemu:dirty-bitmap:NAME), walks
block status over the whole export and, for each extent whose dirty flag (1)
is set, reads it and writes it at the same offset of DEST, an existing file.
Prints the extents copied and the total. A backup client's incremental pass.
"""
import os
import sys

import nbd

uri, ctx, dest = sys.argv[1:4]
h = nbd.NBD()
h.add_meta_context(ctx)
h.connect_uri(uri)
if not h.can_meta_context(ctx):
    sys.exit("server offers no %s" % ctx)
size = h.get_size()
fd = os.open(dest, os.O_WRONLY)
off = copied = 0
while off < size:
    extents = []

    def cb(meta, start, entries, err):
        if meta == ctx:
            extents.extend(zip(entries[0::2], entries[1::2]))
        return 0

    h.block_status(min(size - off, 1 << 30), off, cb)
    if not extents:
        sys.exit("no extents at %d" % off)
    for length, flags in extents:
        length = min(length, size - off)
        if flags & 1:
            buf = h.pread(length, off)
            os.pwrite(fd, buf, off)
            print("copied %d bytes at %d" % (length, off))
            copied += length
        off += length
os.close(fd)
h.shutdown()
print("%d bytes copied" % copied)
