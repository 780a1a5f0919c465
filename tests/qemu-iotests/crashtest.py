#!/usr/bin/env python3
"""Crash-consistency harness for qcow2 (iotests 202-209); python3 stdlib only.

For a scenario (image options + a seeded workload of qemu-io commands) it
  * runs the workload once without faults (the baseline),
  * then once per fault point: a blkdebug rule fails the first I/O (of any type,
    or the first flush) after the k-th occurrence of an event that qcow2 or the
    generic layer signals (l2_update, refblock_alloc, cluster_alloc, cow_write,
    flush_to_disk, ...). A run whose output equals the baseline's did not hit
    the event that many times: k stops growing there,
  * or kills the writer with SIGKILL at random moments (kill mode),
and after every run checks that
  * QEMU's `qemu-img check` (the reference) finds no corruption (leaks allowed;
    `check -r leaks` must then leave a clean image), and so does ours when our
    qemu-img has a working `check`; the image is not marked corrupt (R1-R3,
    C1, C2, C5); an image left dirty (lazy refcounts) may miss refcount
    updates, as QEMU's does, and `check -r all` must then leave it clean,
  * every sector holds a value it may hold: a write acknowledged before a
    successful sync point (`write -f`, or any write in writethrough mode) reads
    back unless a later write covered it; failed or unsynced writes may or may
    not show (C1: never anything else). Content is read through QEMU
    (`qemu-img convert`) and through our qemu-io (`read -P`),
  * with data_file_raw the data file reads the same as the image wherever the
    image maps a cluster (C4; discarded clusters are unmapped, as in QEMU).

Usage: crashtest.py faults|kill SCENARIO [--full] [--seed N] [--report FILE]
Prints one line per scenario ("... ok") or the failures; exit 1 on failure.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

SECTOR = 512
ENV = os.environ
OUR_IO = ENV.get('OUR_QEMU_IO') or ENV.get('QEMU_IO')
OUR_IMG = ENV.get('OUR_QEMU_IMG', '')
REF_IMG = ENV.get('REF_QEMU_IMG') or '/usr/bin/qemu-img'

# Events signalled on the image's file node while qcow2 works, and the generic
# ones. Events that never occur in a workload simply yield no fault points.
EVENTS = [
    'l1_update', 'l1_grow_alloc_table', 'l1_grow_write_table', 'l1_grow_activate_table',
    'l2_load', 'l2_update', 'l2_alloc_cow_read', 'l2_alloc_write',
    'read_aio', 'write_aio', 'cow_read', 'cow_write',
    'reftable_load', 'reftable_grow', 'reftable_update',
    'refblock_load', 'refblock_update', 'refblock_update_part', 'refblock_alloc',
    'refblock_alloc_hookup', 'refblock_alloc_write', 'refblock_alloc_write_blocks',
    'refblock_alloc_write_table', 'refblock_alloc_switch_table',
    'cluster_alloc', 'cluster_free', 'flush_to_os', 'flush_to_disk',
    'pwritev', 'pwritev_zero', 'pwritev_done',
    'l1_shrink_write_table', 'l1_shrink_free_l2_clusters',
]

# name -> (qemu-img create -o options, virtual size, cache mode, workload shape)
SCENARIOS = {
    # tiny clusters, 64-bit refcounts: many L2 tables, refcount blocks and a
    # refcount table that must grow several times
    'small-clusters': ('cluster_size=512,refcount_bits=64', 8 << 20, 'writeback',
                       dict(ops=70, maxlen=512 << 10, grow=2 << 20)),
    'v3-4k': ('cluster_size=4096', 16 << 20, 'writeback',
              dict(ops=50, maxlen=64 << 10, grow=8 << 20)),
    'v3-writethrough': ('cluster_size=1024,refcount_bits=8', 4 << 20, 'writethrough',
                        dict(ops=40, maxlen=32 << 10, grow=0)),
    'lazy-refcounts': ('cluster_size=2048,lazy_refcounts=on', 8 << 20, 'writeback',
                       dict(ops=50, maxlen=48 << 10, grow=0)),
    'v2': ('compat=0.10,cluster_size=1024', 4 << 20, 'writeback',
           dict(ops=50, maxlen=32 << 10, grow=2 << 20)),
    'prealloc-resize': ('cluster_size=4096', 2 << 20, 'writeback',
                        dict(ops=40, maxlen=64 << 10, grow=6 << 20, prealloc='metadata')),
    'data-file': ('cluster_size=4096,data_file=t.data', 8 << 20, 'writeback',
                  dict(ops=50, maxlen=64 << 10, grow=4 << 20)),
    'data-file-raw': ('cluster_size=4096,data_file=t.data,data_file_raw=on', 8 << 20,
                      'writeback', dict(ops=50, maxlen=64 << 10, grow=0)),
    # persistent dirty bitmaps (added with QEMU's qemu-img bitmap): recorded,
    # resized with the image, stored on close
    'bitmaps': ('cluster_size=4096', 8 << 20, 'writeback',
                dict(ops=50, maxlen=64 << 10, grow=4 << 20)),
    # few writes, so that the fault points reach the bitmap store on close
    'bitmaps-store': ('cluster_size=4096', 2 << 20, 'writeback',
                      dict(ops=6, maxlen=4096, grow=1 << 20)),
}

# scenario -> qemu-img bitmap --add arguments, one bitmap each
BITMAPS = {
    'bitmaps': [['b0'], ['-g', '512', 'b1'], ['-g', '1M', '--disable', 'b2']],
    'bitmaps-store': [['b0'], ['-g', '512', 'b1'], ['-g', '1M', '--disable', 'b2']],
}


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# ---- the workload ----

def make_workload(seed, size, shape, kill):
    """A list of (command, kind, offset, length, value); kind in write, sync,
    zero, discard, flush, grow, sleep."""
    rnd = random.Random(seed)
    ops, value, cur_size = [], 0, size
    grow_at = shape['ops'] // 2 if shape.get('grow') else -1
    lens = [512, 1024, 3584, 4096, 8192, 65536, shape['maxlen'], shape['maxlen']]
    for i in range(shape['ops']):
        if i == grow_at:
            cur_size += shape['grow']
            pre = shape.get('prealloc')
            cmd = 'truncate %s%d' % ('-m %s ' % pre if pre else '', cur_size)
            ops.append((cmd, 'grow', 0, cur_size, 0))
            continue
        r = rnd.random()
        length = min(rnd.choice(lens), cur_size)
        # favour the area past the old end once the image grew
        lo = size if (i > grow_at >= 0 and rnd.random() < 0.5) else 0
        off = rnd.randrange(lo // SECTOR, (cur_size - length) // SECTOR + 1) * SECTOR
        value = value % 250 + 1
        if r < 0.55:
            ops.append(('write -P %d %d %d' % (value, off, length), 'write', off, length, value))
        elif r < 0.65:
            ops.append(('write -f -P %d %d %d' % (value, off, length), 'sync', off, length,
                        value))
        elif r < 0.75:
            flag = '-u ' if rnd.random() < 0.5 else ''
            ops.append(('write -z %s%d %d' % (flag, off, length), 'zero', off, length, 0))
        elif r < 0.85:
            ops.append(('discard %d %d' % (off, length), 'discard', off, length, 0))
        else:
            ops.append(('flush', 'flush', 0, 0, 0))
        if kill and rnd.random() < 0.3:
            ops.append(('sleep %d' % rnd.randrange(1, 6), 'sleep', 0, 0, 0))
    # a final sync point, so that everything before must be durable
    ops.append(('write -f -P 251 0 512', 'sync', 0, 512, 251))
    return ops, cur_size


def parse_results(ops, stdout):
    """Per op: True (acknowledged), False (failed) or None (no output seen)."""
    lines = [l for l in stdout.splitlines()
             if re.match(r'(wrote|discard|write failed|discard failed)', l)]
    res, li = [], 0
    for op in ops:
        if op[1] in ('write', 'sync', 'zero', 'discard'):
            if li < len(lines):
                res.append(not lines[li].startswith(('write failed', 'discard failed')))
                li += 1
            else:
                res.append(None)
        else:
            res.append(None)
    return res


class Model:
    """Per sector: the values the image may hold after the run (R-/C-invariants
    say no other value can appear)."""

    def __init__(self, size):
        self.cur = {}       # sector -> set of values the process may see
        self.disk = {}      # sector -> set of values the image may hold
        self.size = size

    def get(self, table, s):
        return table.get(s, {0})

    def apply(self, off, length, value, acked):
        for s in range(off // SECTOR, (off + length) // SECTOR):
            if acked:
                self.cur[s] = {value}
            else:
                self.cur[s] = self.get(self.cur, s) | {value}
            self.disk[s] = self.get(self.disk, s) | {value}

    def sync(self):
        self.disk = {s: set(v) for s, v in self.cur.items()}


def build_model(ops, results, size, writethrough, kill):
    m = Model(size)
    last_seen = max([i for i, r in enumerate(results) if r is not None], default=-1)
    for i, (cmd, kind, off, length, value) in enumerate(ops):
        r = results[i]
        if kind in ('write', 'sync', 'zero'):
            m.apply(off, length, value, r is True)
            if r is True and (kind == 'sync' or writethrough):
                m.sync()
        elif kind == 'discard':
            m.apply(off, length, 0, False)   # whole clusters only: may or may not
        elif kind == 'flush' and kill and i < last_seen:
            m.sync()                         # no faults: a flush that returned worked
    return m


# ---- checks ----

def our_check_works():
    if not OUR_IMG or not os.access(OUR_IMG, os.X_OK):
        return False
    p = run([OUR_IMG, '--version'])
    return b'qemu-img' in p.stdout


def is_dirty(img):
    with open(img, 'rb') as f:
        hdr = f.read(80)
    return len(hdr) >= 80 and struct.unpack('>I', hdr[4:8])[0] >= 3 and hdr[79] & 1


def img_check(img, tool, label, errors):
    if is_dirty(img):
        # Lazy refcounts: a killed writer leaves refcount updates unwritten, as
        # QEMU does; what a read-write open would do (check -r all) must then
        # leave a clean image. Done on a copy, so each tool sees the original.
        tmp = img + '.repair'
        shutil.copyfile(img, tmp)
        p = run([tool, 'check', '-r', 'all', tmp])
        p2 = run([tool, 'check', tmp])
        os.unlink(tmp)
        if p.returncode != 0 or p2.returncode != 0:
            errors.append('%s check -r all of the dirty image: exit %d, then %d\n%s' % (
                label, p.returncode, p2.returncode,
                (p.stdout + p.stderr + p2.stdout + p2.stderr).decode(errors='replace')))
        return
    p = run([tool, 'check', img])
    out = (p.stdout + p.stderr).decode(errors='replace')
    if p.returncode not in (0, 3):
        errors.append('%s check: exit %d\n%s' % (label, p.returncode, out))
        return
    if p.returncode == 3:
        p = run([tool, 'check', '-r', 'leaks', img])
        p2 = run([tool, 'check', img])
        if p2.returncode != 0:
            errors.append('%s check -r leaks left: exit %d\n%s' % (
                label, p2.returncode, (p2.stdout + p2.stderr).decode(errors='replace')))


def verify_content(img, m, size, errors, data_file_raw):
    raw = img + '.dump'
    p = run([REF_IMG, 'convert', '-U', '-f', 'qcow2', '-O', 'raw', img, raw])
    if p.returncode != 0:
        errors.append('qemu-img convert failed: %s' % p.stderr.decode(errors='replace'))
        return
    with open(raw, 'rb') as f:
        data = f.read()
    os.unlink(raw)
    actual = len(data) // SECTOR     # a failed resize leaves the image smaller
    data += bytes(max(0, size - len(data)))
    bad = 0
    cmds = []
    for s in range(size // SECTOR):
        allowed = m.get(m.disk, s)
        sec = data[s * SECTOR:(s + 1) * SECTOR]
        ok = len(sec) == SECTOR and sec == bytes([sec[0]]) * SECTOR and sec[0] in allowed
        if not ok:
            bad += 1
            if bad <= 5:
                errors.append('sector %d (offset %#x): holds %s, allowed %s' % (
                    s, s * SECTOR, sec[:8].hex(), sorted(allowed)))
        elif len(allowed) == 1 and s < actual:
            cmds.append((s, sec[0]))
    if bad > 5:
        errors.append('... %d bad sectors in all' % bad)
    # the same through our qemu-io: runs of single-valued sectors
    argv, run_start, prev = [OUR_IO, '-r', '-f', 'qcow2'], None, None
    for s, v in cmds + [(None, None)]:
        if run_start is not None and (s != prev[0] + 1 or v != prev[1]):
            n = prev[0] - run_start + 1
            argv += ['-c', 'read -q -P %d %d %d' % (prev[1], run_start * SECTOR,
                                                   n * SECTOR)]
            run_start = None
        if s is not None and run_start is None:
            run_start = s
        prev = (s, v)
    p = run(argv + [img])
    if p.returncode != 0 or p.stdout.strip():
        errors.append('our qemu-io reads differ: %s %s' % (
            p.stdout.decode(errors='replace')[:500], p.stderr.decode(errors='replace')[:500]))
    if data_file_raw:
        with open('t.data', 'rb') as f:
            d = f.read()
        d = d[:size] + bytes(max(0, size - len(d)))
        # discarded clusters are unmapped and may keep stale data (as in QEMU);
        # every mapped cluster, zero or not, reads the same in the data file
        p = run([REF_IMG, 'map', '-U', '--output=json', '-f', 'qcow2', img])
        if p.returncode != 0:
            errors.append('qemu-img map failed: %s' % p.stderr.decode(errors='replace')[:500])
        else:
            for e in json.loads(p.stdout):
                a, b = e['start'], min(e['start'] + e['length'], size)
                if 'offset' in e and d[a:b] != data[a:b]:
                    errors.append('C4: the raw data file differs from the image '
                                  'content in mapped range %#x+%#x' % (a, b - a))
                    break


def read_bitmaps(img):
    """The bitmaps in a qcow2 file: name -> (flags, granularity, set of dirty
    granule indexes), parsed from the bitmap directory, tables and data."""
    import struct
    with open(img, 'rb') as f:
        d = f.read()
    cluster = 1 << struct.unpack('>I', d[20:24])[0]
    off = struct.unpack('>I', d[100:104])[0]
    out = {}
    while off + 8 <= len(d):
        magic, length = struct.unpack('>II', d[off:off + 8])
        if magic == 0:
            break
        if magic == 0x23852875:
            nb, _, _, directory = struct.unpack('>IIQQ', d[off + 8:off + 32])
            p = directory
            for _ in range(nb):
                toff, tsize, flags, _, gbits, nsize, extra = struct.unpack(
                    '>QIIBBHI', d[p:p + 24])
                name = d[p + 24 + extra:p + 24 + extra + nsize].decode()
                bits = set()
                for i in range(tsize):
                    e = struct.unpack('>Q', d[toff + 8 * i:toff + 8 * i + 8])[0]
                    data = (d[e & 0x00fffffffffffe00:][:cluster] if e & ~1 else
                            bytes([0xff if e & 1 else 0]) * cluster)
                    for j, byte in enumerate(data):
                        for b in range(8):
                            if byte >> b & 1:
                                bits.add((i * cluster + j) * 8 + b)
                out[name] = (flags, 1 << gbits, bits)
                p += (24 + extra + nsize + 7) // 8 * 8
        off += 8 + (length + 7) // 8 * 8
    return out


def check_bitmaps(ops, results, errors):
    """A bitmap that is not in_use must record every acknowledged change; a
    disabled one records nothing."""
    for name, (flags, gran, bits) in read_bitmaps('t.qcow2').items():
        if flags & 1:
            continue            # in_use: not saved, nobody trusts it
        auto = flags & 2
        if not auto and bits:
            errors.append('disabled bitmap %s has %d dirty bits' % (name, len(bits)))
        for (cmd, kind, off, length, _), r in zip(ops, results):
            if not auto or r is not True or kind not in ('write', 'sync', 'zero', 'discard'):
                continue
            need = set(range(off // gran, (off + length - 1) // gran + 1))
            if not need <= bits:
                errors.append('bitmap %s misses "%s"' % (name, cmd))
                return


def check_image(scn, m, size, errors):
    img = 't.qcow2'
    p = run([REF_IMG, 'info', '-U', '--output=json', img])
    if p.returncode == 0:
        info = json.loads(p.stdout)
        spec = info.get('format-specific', {}).get('data', {})
        if spec.get('corrupt'):
            errors.append('the image was marked corrupt')
            return
    img_check(img, REF_IMG, 'QEMU', errors)
    if our_check_works():
        img_check(img, OUR_IMG, 'our', errors)
    verify_content(img, m, size, errors, 'data_file_raw=on' in SCENARIOS[scn][0])


# ---- runs ----

def create(scn):
    opts, size = SCENARIOS[scn][0], SCENARIOS[scn][1]
    for f in ('t.qcow2', 't.data'):
        if os.path.exists(f):
            os.unlink(f)
    p = run([REF_IMG, 'create', '-q', '-f', 'qcow2', '-o', opts, 't.qcow2', str(size)])
    if p.returncode:
        raise SystemExit('create failed: %s' % p.stderr.decode())
    for args in BITMAPS.get(scn, []):
        p = run([REF_IMG, 'bitmap', '--add'] + args[:-1] + ['t.qcow2', args[-1]])
        if p.returncode:
            raise SystemExit('bitmap --add failed: %s' % p.stderr.decode())


def image_json(rules):
    fileopt = {'driver': 'file', 'filename': 't.qcow2'}
    if rules:
        fileopt = dict(rules, driver='blkdebug', image=fileopt)
    return 'json:' + json.dumps({'driver': 'qcow2', 'file': fileopt})


def fault_rules(event, k, iotype, errno):
    rule = {'event': event, 'state': k, 'once': True, 'errno': errno}
    if iotype:
        rule['iotype'] = iotype
    return {'set-state': [{'event': event, 'state': i, 'new_state': i + 1}
                          for i in range(1, k)] or None,
            'inject-error': [rule]}


def run_workload(scn, ops, rules):
    cache = SCENARIOS[scn][2]
    argv = [OUR_IO, '-t', cache]
    for op in ops:
        argv += ['-c', op[0]]
    r = {k: v for k, v in (rules or {}).items() if v}
    p = run(argv + [image_json(r)], timeout=120)
    out = p.stdout.decode(errors='replace')
    out = '\n'.join(l for l in out.splitlines() if ' ops; ' not in l)   # timings
    return p.returncode, out, p.stderr.decode(errors='replace')


def fault_mode(scn, args, report):
    size, cache, shape = SCENARIOS[scn][1:]
    ops, final_size = make_workload(args.seed, size, shape, False)
    create(scn)
    base = run_workload(scn, ops, None)
    failures, points, fired_events = [], 0, {}
    errs = []
    check_image(scn, build_model(ops, parse_results(ops, base[1]), final_size,
                                 cache == 'writethrough', False), final_size, errs)
    if scn in BITMAPS:
        check_bitmaps(ops, parse_results(ops, base[1]), errs)
        stored = read_bitmaps('t.qcow2')
        if len(stored) != len(BITMAPS[scn]) or any(f & 1 for f, _, _ in stored.values()):
            errs.append('bitmaps not stored cleanly: %s' % sorted(
                (n, f) for n, (f, _, _) in stored.items()))
    if errs or base[0] != 0:
        print('%s: baseline run fails: rc=%d\n%s\n%s' % (scn, base[0], base[2], '\n'.join(errs)))
        return 1
    ks = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89] if args.full else [1, 2, 4, 9]
    if scn == 'bitmaps-store' and args.full:
        ks = list(range(1, 100))    # every occurrence: the store on close comes last
    variants = [(None, 5), ('flush', 5), ('write', 28)] if args.full else [(None, 5)]
    for event in EVENTS:
        for iotype, errno in variants:
            unchanged = 0
            for k in ks:
                create(scn)
                rc, out, err = run_workload(scn, ops, fault_rules(event, k, iotype, errno))
                if (out, err) == base[1:] and rc == base[0]:
                    # fewer than k occurrences (or no effect): done. With bitmaps a
                    # fault in loading them at open is absorbed (the first write
                    # loads again), so there go on for a few more occurrences
                    unchanged += 1
                    if scn not in BITMAPS or unchanged == 4:
                        break
                    continue
                unchanged = 0
                if rc < 0 or rc > 1 or 'AddressSanitizer' in err or 'runtime error' in err:
                    failures.append('%s k=%d %s: qemu-io crashed (rc %d)\n%s' % (
                        event, k, iotype, rc, err[-2000:]))
                    continue
                points += 1
                fired_events.setdefault(event, 0)
                fired_events[event] += 1
                m = build_model(ops, parse_results(ops, out), final_size,
                                cache == 'writethrough', False)
                errs = []
                check_image(scn, m, final_size, errs)
                if scn in BITMAPS:
                    check_bitmaps(ops, parse_results(ops, out), errs)
                if errs:
                    failures.append('%s #%d iotype=%s errno=%d:\n  %s\n  qemu-io stderr: %s' % (
                        event, k, iotype or 'any', errno, '\n  '.join(errs), err.strip()[:800]))
    if report:
        with open(report, 'a') as f:
            f.write(json.dumps({'scenario': scn, 'mode': 'faults', 'points': points,
                                'events': fired_events}) + '\n')
    if points < 10:
        failures.append('only %d fault points were hit' % points)
    if failures:
        print('%s: %d fault points, %d FAILED' % (scn, points, len(failures)))
        for f in failures[:20]:
            print(f)
        return 1
    print('%s: fault points consistent' % scn)
    return 0


def kill_mode(scn, args, report):
    size, cache, shape = SCENARIOS[scn][1:]
    rnd = random.Random(args.seed)
    runs = args.kills
    failures, killed = [], 0
    for i in range(runs):
        shape2 = dict(shape, ops=shape['ops'] * 3)
        ops, final_size = make_workload(args.seed * 1000 + i, size, shape2, True)
        create(scn)
        argv = [OUR_IO, '-t', cache]
        for op in ops:
            argv += ['-c', op[0]]
        argv = ['stdbuf', '-oL'] + argv + ['t.qcow2']
        t0 = time.monotonic()
        # stdbuf works by LD_PRELOAD, which ASan builds must be told to accept
        env = dict(os.environ)
        env['ASAN_OPTIONS'] = ':'.join(filter(None, [env.get('ASAN_OPTIONS'),
                                                     'verify_asan_link_order=0']))
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        time.sleep(rnd.uniform(0.0, 0.25))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        out, err = p.communicate()
        res = parse_results(ops, out.decode(errors='replace'))
        if p.returncode == 0:
            pass
        elif p.returncode != -signal.SIGKILL:
            failures.append('run %d: qemu-io exit %d: %s' % (i, p.returncode, err.decode()[-500:]))
            continue
        else:
            # the op in flight (and all after it) may or may not have happened
            res = [r if r is not None else None for r in res]
        m = build_model(ops, [r if r is not None else None for r in res], final_size,
                        cache == 'writethrough', True)
        errs = []
        check_image(scn, m, final_size, errs)
        if scn in BITMAPS:
            check_bitmaps(ops, res, errs)
        if errs:
            failures.append('run %d (killed after %.3fs, %d ops acknowledged):\n  %s' % (
                i, time.monotonic() - t0, sum(1 for r in res if r), '\n  '.join(errs)))
    if report:
        with open(report, 'a') as f:
            f.write(json.dumps({'scenario': scn, 'mode': 'kill', 'runs': runs,
                                'killed': killed}) + '\n')
    if killed == 0:
        failures.append('no run was killed before it finished')
    if failures:
        print('%s: %d kill runs, %d FAILED' % (scn, runs, len(failures)))
        for f in failures[:20]:
            print(f)
        return 1
    print('%s: kill -9 runs consistent' % scn)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['faults', 'kill'])
    ap.add_argument('scenarios', nargs='+')
    ap.add_argument('--full', action='store_true', default=bool(ENV.get('CRASH_FULL')))
    ap.add_argument('--seed', type=int, default=int(ENV.get('CRASH_SEED', '1')))
    ap.add_argument('--kills', type=int, default=int(ENV.get('CRASH_KILLS', '12')))
    ap.add_argument('--report', default=ENV.get('CRASH_REPORT'))
    args = ap.parse_args()
    rc = 0
    for scn in args.scenarios:
        if scn not in SCENARIOS:
            raise SystemExit('unknown scenario ' + scn)
        fn = fault_mode if args.mode == 'faults' else kill_mode
        rc |= fn(scn, args, args.report)
    return rc


if __name__ == '__main__':
    sys.exit(main())
