#!/usr/bin/env python3
"""Crash consistency of qemu-img commit and rebase (iotest 147); stdlib only.

For each scenario a chain of qcow2 images is made (by QEMU's qemu-img and
qemu-io), then our qemu-img runs commit or rebase on it
  * once per fault point: a blkdebug rule under the top image (or the base)
    fails the first I/O, or the first flush, after the k-th occurrence of an
    event (cluster allocation, refcount and L1 updates, emptying, flushes...);
    a run that prints what the clean run printed did not reach the point, and k
    stops growing there;
  * or killed with SIGKILL at random moments (kill mode),
and afterwards
  * QEMU's `qemu-img check` finds no corruption in any image, and no leak in
    the images our command only emptied or renamed the backing file of (the top
    of commit, the top of rebase -u); the other images may leak clusters a
    failed or killed write allocated, as in any crash. An image left dirty
    (emptying marks it so before it rewrites the tables in place, as QEMU's
    does) is checked after the repair QEMU makes when it opens it read-write;
  * the top image (through its backing chain) reads exactly as before: commit
    puts the data into the base before it empties the top, rebase writes what
    differs before it switches the backing file;
  * a commit that said 'Image committed.' left an empty top and a rebase that
    succeeded names the new backing file.

Usage: chaincrash.py faults|kill SCENARIO... [--full] [--seed N] [--kills N]
Prints one line per scenario; exit 1 on a failure.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

ENV = os.environ
OUR_IMG = ENV.get('OUR_QEMU_IMG') or ENV.get('QEMU_IMG')
REF_IMG = ENV.get('REF_QEMU_IMG') or '/usr/bin/qemu-img'
REF_IO = ENV.get('REF_QEMU_IO') or '/usr/bin/qemu-io'

EVENTS = [
    'empty_image_prepare', 'l1_update', 'l2_update', 'l2_alloc_write', 'l2_load',
    'cow_read', 'cow_write', 'refblock_alloc', 'refblock_update', 'reftable_update',
    'refblock_alloc_hookup', 'refblock_alloc_write', 'cluster_alloc', 'cluster_free',
    'flush_to_os', 'flush_to_disk', 'pwritev', 'pwritev_zero', 'pwritev_done',
    'read_aio', 'write_aio',
]

MiB = 1 << 20


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def sh(argv):
    p = run(argv)
    if p.returncode:
        raise SystemExit('setup failed: %s\n%s' % (' '.join(argv), p.stderr.decode()))


def node(filename, rules=None, backing=None):
    """Options of a qcow2 node on @filename, blkdebug @rules under it."""
    f = {'driver': 'file', 'filename': filename}
    if rules:
        f = dict(rules, driver='blkdebug', image=f)
    n = {'driver': 'qcow2', 'file': f}
    if backing:
        n['backing'] = backing
    return n


def fault_rules(event, k, iotype, once=True):
    """Fail the first I/O after the k-th @event; with once=False every I/O after
    it, which is what a crash at that moment leaves on disk."""
    rule = {'event': event, 'state': k, 'once': once, 'errno': 5}
    if iotype:
        rule['iotype'] = iotype
    r = {'inject-error': [rule]}
    if k > 1:
        r['set-state'] = [{'event': event, 'state': i, 'new_state': i + 1}
                          for i in range(1, k)]
    return r


# ---- scenarios: (set up, our command line for a given blkdebug setting) ----

def write_chain(cluster, size, top_writes, base_writes=(), mid=False):
    """base <- [mid <-] top, data written by QEMU's qemu-io."""
    for f in ('base.qcow2', 'mid.qcow2', 'top.qcow2', 'new.qcow2'):
        if os.path.exists(f):
            os.unlink(f)
    sh([REF_IMG, 'create', '-q', '-f', 'qcow2', 'base.qcow2', str(size)])
    below = 'base.qcow2'
    if mid:
        sh([REF_IMG, 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=%d' % cluster,
            '-b', 'base.qcow2', '-F', 'qcow2', 'mid.qcow2'])
        sh([REF_IO, '-c', 'write -P 0x22 %d %d' % (size // 4, size // 8), 'mid.qcow2'])
        below = 'mid.qcow2'
    sh([REF_IMG, 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=%d' % cluster,
        '-b', below, '-F', 'qcow2', 'top.qcow2'])
    for cmd in base_writes:
        sh([REF_IO, '-c', cmd, 'base.qcow2'])
    for cmd in top_writes:
        sh([REF_IO, '-c', cmd, 'top.qcow2'])


def seeded_writes(seed, size, n, maxlen):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        length = rnd.choice([512, 4096, 65536, maxlen])
        off = rnd.randrange(0, (size - length) // 512 + 1) * 512
        if rnd.random() < 0.2:
            out.append('write -z %d %d' % (off, length))
        else:
            out.append('write -P %d %d %d' % (i % 250 + 1, off, length))
    return out


class Scenario:
    def __init__(self, name, op, where, setup, args, clean_top, size):
        self.name, self.op, self.where = name, op, where
        self.setup, self.args, self.clean_top, self.size = setup, args, clean_top, size

    def argv(self, rules):
        """Our qemu-img command with blkdebug @rules under the top or the base
        (given through the top's options: the header keeps the plain names)."""
        if self.where == 'top':
            top = node('top.qcow2', rules)
        else:
            base = node('base.qcow2', rules)
            if os.path.exists('mid.qcow2'):
                base = node('mid.qcow2', None, base)
            top = node('top.qcow2', None, base)
        return [OUR_IMG] + self.args + ['json:' + json.dumps(top)]


def scenarios(seed):
    S = 8 * MiB
    top = seeded_writes(seed, S, 40, 256 * 1024)
    base = seeded_writes(seed + 1, S, 20, MiB)
    newb = seeded_writes(seed + 2, S, 20, MiB)

    def chain(cluster, mid=False, new=False):
        saved = {}

        def setup():
            # made once with QEMU's tools, then copied back for every run
            if saved:
                for f in ('base.qcow2', 'mid.qcow2', 'top.qcow2', 'new.qcow2'):
                    if os.path.exists(f):
                        os.unlink(f)
                for f, data in saved.items():
                    with open(f, 'wb') as fd:
                        fd.write(data)
                return
            write_chain(cluster, S, top, base, mid)
            if new:
                sh([REF_IMG, 'create', '-q', '-f', 'qcow2', 'new.qcow2', str(S)])
                for cmd in newb:
                    sh([REF_IO, '-c', cmd, 'new.qcow2'])
            for f in ('base.qcow2', 'mid.qcow2', 'top.qcow2', 'new.qcow2'):
                if os.path.exists(f):
                    with open(f, 'rb') as fd:
                        saved[f] = fd.read()
        return setup

    return {
        # faults under the top: reading it, and emptying it (the rebuild)
        'commit': Scenario('commit', 'commit', 'top', chain(4096), ['commit'], True, S),
        # the same with 512-byte clusters: the emptied image's tables span clusters
        'commit-512': Scenario('commit-512', 'commit', 'top', chain(512), ['commit'],
                               True, S),
        # faults under the base: the copy into it
        'commit-base': Scenario('commit-base', 'commit', 'base', chain(4096),
                                ['commit', '-d'], True, S),
        # -b through an intermediate image, faults under the base
        'commit-deep': Scenario('commit-deep', 'commit', 'base', chain(4096, mid=True),
                                ['commit', '-b', 'base.qcow2'], True, S),
        # safe rebase: the copy into the top and the header switch
        'rebase': Scenario('rebase', 'rebase', 'top', chain(4096, new=True),
                           ['rebase', '-b', 'new.qcow2', '-F', 'qcow2'], False, S),
        'rebase-flatten': Scenario('rebase-flatten', 'rebase', 'top', chain(4096),
                                   ['rebase', '-b', ''], False, S),
        'rebase-unsafe': Scenario('rebase-unsafe', 'rebase', 'top', chain(65536, new=True),
                                  ['rebase', '-u', '-b', 'new.qcow2', '-F', 'qcow2'], True,
                                  S),
    }


# ---- checks ----

def content(img):
    p = run([REF_IMG, 'convert', '-U', '-O', 'raw', img, img + '.dump'])
    if p.returncode:
        return 'convert failed: ' + p.stderr.decode(errors='replace')
    with open(img + '.dump', 'rb') as f:
        h = hashlib.sha256(f.read()).hexdigest()
    os.unlink(img + '.dump')
    return h


def backing_of(img):
    p = run([REF_IMG, 'info', '-U', '--output=json', img])
    if p.returncode:
        return None
    return json.loads(p.stdout).get('backing-filename')


def allocated(img):
    p = run([REF_IMG, 'map', '-U', '--output=json', img])
    return any(e['depth'] == 0 and (e['present'] or e['data'])
               for e in json.loads(p.stdout or b'[]'))


def expected_contents(scn):
    """What the top may read after the run: as before; after rebase -u, also as
    with the new backing file (computed with QEMU's qemu-img on a copy)."""
    want = {content('top.qcow2')}
    if scn.op == 'rebase' and '-u' in scn.args:
        with open('top.qcow2', 'rb') as f, open('alt.qcow2', 'wb') as g:
            g.write(f.read())
        b = scn.args[scn.args.index('-b') + 1]
        sh([REF_IMG, 'rebase', '-u', '-b', b, '-F', 'qcow2', 'alt.qcow2'])
        want.add(content('alt.qcow2'))
        os.unlink('alt.qcow2')
    return want


def is_dirty(img):
    p = run([REF_IMG, 'info', '-U', '--output=json', img])
    return p.returncode == 0 and json.loads(p.stdout).get('dirty-flag', False)


def check(scn, before, out, rc, errors):
    images = [f for f in ('top.qcow2', 'mid.qcow2', 'base.qcow2') if os.path.exists(f)]
    for img in images:
        if is_dirty(img):
            # refcounts are not to be trusted: QEMU repairs them when it next
            # opens the image read-write (emptying marks the image dirty first,
            # as QEMU's does, and rewrites its tables in place)
            run([REF_IO, '-c', 'close', img])
        p = run([REF_IMG, 'check', img])
        text = (p.stdout + p.stderr).decode(errors='replace')
        clean_needed = img == 'top.qcow2' and scn.clean_top
        if p.returncode not in (0, 3) or (p.returncode == 3 and clean_needed):
            errors.append('%s: check exit %d\n%s' % (img, p.returncode, text.strip()))
        p = run([REF_IMG, 'info', '-U', '--output=json', img])
        if b'"corrupt": true' in p.stdout:
            errors.append('%s is marked corrupt' % img)
    after = content('top.qcow2')
    if after not in before:
        errors.append('the top reads differently: %s' % after[:80])
    if scn.op == 'commit' and rc == 0 and b'Image committed.' in out and \
            '-d' not in scn.args and '-b' not in scn.args and allocated('top.qcow2'):
        errors.append('commit succeeded but the top is not empty')
    if scn.op == 'rebase' and rc == 0:
        want = scn.args[scn.args.index('-b') + 1] or None
        if backing_of('top.qcow2') != want:
            errors.append('rebase succeeded but the backing file is %r' %
                          backing_of('top.qcow2'))


# ---- modes ----

def fault_mode(scn, args):
    scn.setup()
    before = expected_contents(scn)
    p = run(scn.argv(None))
    base_out, base_rc = p.stdout + p.stderr, p.returncode
    errs = []
    check(scn, before, p.stdout, base_rc, errs)
    if base_rc or errs:
        print('%s: the run without faults fails: rc=%d %s %s' % (
            scn.name, base_rc, base_out.decode(errors='replace'), errs))
        return 1
    ks = [1, 2, 3, 5, 8, 13, 21, 34] if args.full else [1, 2, 4, 9]
    variants = [(None, True), (None, False)]
    if args.full:
        variants += [('flush', True), ('write', True), ('write', False)]
    failures, points = [], 0
    for event in EVENTS:
        for iotype, once in variants:
            for k in ks:
                scn.setup()
                p = run(scn.argv(fault_rules(event, k, iotype, once)), timeout=120)
                if p.returncode == base_rc and p.stdout + p.stderr == base_out:
                    break           # the event does not happen k times
                if p.returncode not in (0, 1) or b'AddressSanitizer' in p.stderr:
                    failures.append('%s #%d %s once=%s: crashed (rc %d)\n%s' % (
                        event, k, iotype, once, p.returncode, p.stderr.decode()[-1000:]))
                    continue
                points += 1
                errs = []
                check(scn, before, p.stdout, p.returncode, errs)
                if errs:
                    failures.append('%s #%d iotype=%s once=%s: %s\n  qemu-img said: %s' % (
                        event, k, iotype or 'any', once, '\n  '.join(errs),
                        (p.stdout + p.stderr).decode(errors='replace').strip()[:400]))
    if points < 5:
        failures.append('only %d fault points were hit' % points)
    if failures:
        print('%s: %d fault points, %d FAILED' % (scn.name, points, len(failures)))
        for f in failures[:10]:
            print(f)
        return 1
    print('%s: %d fault points consistent' % (scn.name, points))
    return 0


def kill_mode(scn, args):
    rnd = random.Random(args.seed)
    failures, killed = [], 0
    scn.setup()
    t0 = time.monotonic()
    run(scn.argv(None))
    duration = time.monotonic() - t0    # kills land anywhere in a run like it
    for i in range(args.kills):
        scn.setup()
        before = expected_contents(scn)
        t0 = time.monotonic()
        argv = scn.argv(None)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rnd.uniform(0.0, duration))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        out, err = p.communicate()
        errs = []
        check(scn, before, out, p.returncode, errs)
        if p.returncode not in (0, -signal.SIGKILL):
            errs.append('exit %d: %s' % (p.returncode, err.decode(errors='replace')))
        if errs:
            failures.append('run %d (killed after %.3f s): %s' % (
                i, time.monotonic() - t0, '\n  '.join(errs)))
    if killed == 0:
        failures.append('no run was killed before it finished')
    if failures:
        print('%s: %d kill runs, %d FAILED' % (scn.name, args.kills, len(failures)))
        for f in failures[:10]:
            print(f)
        return 1
    print('%s: kill -9 runs consistent (%d of %d killed)' % (scn.name, killed, args.kills))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['faults', 'kill'])
    ap.add_argument('scenarios', nargs='+')
    ap.add_argument('--full', action='store_true', default=bool(ENV.get('CRASH_FULL')))
    ap.add_argument('--seed', type=int, default=int(ENV.get('CRASH_SEED', '1')))
    ap.add_argument('--kills', type=int, default=int(ENV.get('CRASH_KILLS', '12')))
    args = ap.parse_args()
    all_scn = scenarios(args.seed)
    rc = 0
    for name in args.scenarios:
        if name not in all_scn:
            raise SystemExit('unknown scenario ' + name)
        fn = fault_mode if args.mode == 'faults' else kill_mode
        rc |= fn(all_scn[name], args)
    return rc


if __name__ == '__main__':
    sys.exit(main())
