#!/usr/bin/env python3
"""Run our tools on every hostile image of gen-hostile.py (python3 stdlib only).

  run-hostile.py QEMU_IO DIR [NAME...]

For each image: our qemu-io opens it read-write and runs reads, a block status
walk (map), writes, zero writes, discards and flushes, then read-only with
reads and map. Each run must end with exit status 0 or 1 (never a signal),
within 30 s, with no sanitizer report and a peak RSS under 512 MiB, and must
not leave a file outside DIR changed. Prints one line per image: its name, the
exit status of both runs and the first error line (scratch paths filtered);
"CRASH"/"HANG"/"MEMORY"/"SANITIZER" lines mark failures (exit status 1).
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

RSS_LIMIT_KB = 512 * 1024
TIMEOUT = 30

RW_CMDS = ['read 0 64k', 'map', 'write -P 7 0 4k', 'write -P 8 1016k 8k',
           'write -z 64k 64k', 'discard 0 64k', 'read -P 0 0 4k', 'flush',
           'alloc 0 1M']
RO_CMDS = ['read 0 4k', 'read 512k 4k', 'map', 'info']


def run_one(argv, cwd):
    """(status, stderr, peak rss kB, seconds); status -N for signal N, None: hang."""
    start = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = b''
    try:
        _, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, '', 0, TIMEOUT
    # the child is reaped: its peak RSS is the maximum over children so far
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return p.returncode, err.decode(errors='replace'), rss, time.monotonic() - start


def first_error(err, d):
    for line in err.splitlines():
        line = line.replace(d, 'DIR')
        line = re.sub(r'^\S*qemu-io: ', 'qemu-io: ', line)
        if line.strip() and not line.startswith('WARNING'):
            return line[:240]
    return ''


def main():
    io, d = sys.argv[1], os.path.abspath(sys.argv[2])
    names = sys.argv[3:]
    if not names:
        with open(os.path.join(d, 'MANIFEST')) as f:
            names = [l.split('\t')[0] for l in f if l.strip()]
    work = os.path.join(d, 'work')
    failed = 0
    for name in names:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(d, work, ignore=shutil.ignore_patterns('work', 'MANIFEST'))
        img = name + '.qcow2'
        line = [name]
        for mode, cmds in (('rw', RW_CMDS), ('ro', RO_CMDS)):
            argv = [io, '-t', 'writeback'] + (['-r'] if mode == 'ro' else [])
            for c in cmds:
                argv += ['-c', c]
            status, err, rss, secs = run_one(argv + [img], work)
            bad = None
            if status is None:
                bad = 'HANG'
            elif status < 0 or status > 1:
                bad = 'CRASH (status %d)' % status
            elif 'Sanitizer' in err or 'runtime error:' in err:
                bad = 'SANITIZER'
            elif rss > RSS_LIMIT_KB:
                bad = 'MEMORY (%d MiB)' % (rss // 1024)
            if bad:
                failed += 1
                line.append('%s: %s %s' % (mode, bad, err[-3000:]))
            else:
                line.append('%s=%d %s' % (mode, status, first_error(err, work)))
        print(' | '.join(line))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
