#!/usr/bin/python3
"""The incremental-backup workload of bench/run, one process per step.

    incremental-backup.py dirty QMP NBD STRIDE LEN      (setup, untimed)
    incremental-backup.py backup QMP NBD FLEECE DEST    (timed)
    incremental-backup.py ref RAW DEST STRIDE LEN       (the reference, timed)

dirty: on a daemon serving node "disk", adds the persistent bitmap "inc",
exports the disk writable as "guest" and writes LEN bytes every STRIDE bytes
through it (the guest's writes: 5% of the disk for STRIDE = 20 x LEN).
backup: one pull-mode incremental backup, as docs/incremental-backup.md does
it: blockdev-add of the fleece overlay FLEECE (made beforehand, backed by the
disk's image), one transaction (freeze "inc" into "frozen", clear "inc",
blockdev-backup sync=none into the fleece), export of the fleece with
"frozen", a libnbd copy of its dirty extents into DEST, then block-export-del,
job-cancel, blockdev-del and block-dirty-bitmap-remove. Prints the bytes
copied. ref: the same extents copied from the raw disk with pread/pwrite,
what dd of only the dirty bytes would do, in one process.
Needs python3-libnbd (the Debian package installs it for /usr/bin/python3).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'tests', 'qemu-iotests'))
from nbd_copy_dirty import copy_dirty  # noqa: E402  (the iotests' libnbd client)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import Qmp  # noqa: E402


def extents(stride, length, size):
    return [(off, min(length, size - off)) for off in range(0, size, stride)]


def dirty(qmp_path, nbd_path, stride, length):
    import nbd
    q = Qmp(qmp_path)
    q.cmd('block-dirty-bitmap-add', node='disk', name='inc', persistent=True)
    q.cmd('block-export-add', type='nbd', id='guest', **{'node-name': 'disk'},
          writable=True)
    h = nbd.NBD()
    h.connect_uri('nbd+unix:///disk?socket=%s' % nbd_path)
    buf = b'\xa5' * length
    for off, n in extents(stride, length, h.get_size()):
        h.pwrite(buf[:n], off)
    h.flush()
    h.shutdown()


def backup(qmp_path, nbd_path, fleece, dest):
    import nbd
    q = Qmp(qmp_path)
    q.cmd('blockdev-add', driver='qcow2', **{'node-name': 'fleece'},
          file={'driver': 'file', 'filename': fleece}, backing='disk')
    q.cmd('transaction', actions=[
        {'type': 'block-dirty-bitmap-add',
         'data': {'node': 'disk', 'name': 'frozen', 'disabled': True}},
        {'type': 'block-dirty-bitmap-merge',
         'data': {'node': 'disk', 'target': 'frozen', 'bitmaps': ['inc']}},
        {'type': 'block-dirty-bitmap-clear', 'data': {'node': 'disk', 'name': 'inc'}},
        {'type': 'blockdev-backup',
         'data': {'job-id': 'fl', 'device': 'disk', 'target': 'fleece', 'sync': 'none'}}])
    q.cmd('block-export-add', type='nbd', id='fleece', **{'node-name': 'fleece'},
          bitmaps=['frozen'])
    ctx = 'qemu:dirty-bitmap:frozen'
    h = nbd.NBD()
    h.add_meta_context(ctx)
    h.connect_uri('nbd+unix:///fleece?socket=%s' % nbd_path)
    fd = os.open(dest, os.O_WRONLY)
    copied = sum(n for _, n in copy_dirty(h, ctx, fd))
    os.fsync(fd)
    os.close(fd)
    h.shutdown()
    q.cmd('block-export-del', id='fleece')
    q.cmd('job-cancel', id='fl')
    q.wait_job('fl', 'null')
    q.cmd('blockdev-del', **{'node-name': 'fleece'})
    q.cmd('block-dirty-bitmap-remove', node='disk', name='frozen')
    print('%d bytes copied' % copied)


def ref(raw, dest, stride, length):
    src = os.open(raw, os.O_RDONLY)
    fd = os.open(dest, os.O_WRONLY)
    copied = 0
    for off, n in extents(stride, length, os.fstat(src).st_size):
        os.pwrite(fd, os.pread(src, n, off), off)
        copied += n
    os.fsync(fd)
    print('%d bytes copied' % copied)


if __name__ == '__main__':
    mode, a = sys.argv[1], sys.argv[2:]
    if mode == 'dirty':
        dirty(a[0], a[1], int(a[2]), int(a[3]))
    elif mode == 'backup':
        backup(a[0], a[1], a[2], a[3])
    elif mode == 'ref':
        ref(a[0], a[1], int(a[2]), int(a[3]))
    else:
        sys.exit(__doc__)
