#!/usr/bin/env python3
"""Random I/O through OUR qemu-io on a qcow2 image, mirrored into a raw file with
Debian's qemu-io; Debian's qemu-img check must find the image clean and
qemu-img compare must find it equal to the mirror. Deterministic: fixed seeds.

usage: random_io.py OUR_QEMU_IO REF_QEMU_IO REF_QEMU_IMG WORKDIR CONFIG SEED [NCMDS]
Prints one line: "<config> seed <n>: ok" or what failed.
"""
import os
import random
import subprocess
import sys


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def main():
    ours, ref_io, ref_img, d, opts, seed = sys.argv[1:7]
    ncmds = int(sys.argv[7]) if len(sys.argv) > 7 else 60
    seed = int(seed)
    r = random.Random(seed)
    img, mirror = os.path.join(d, 's.qcow2'), os.path.join(d, 'm.raw')
    params = dict(x.split('=') for x in opts.split(',') if '=' in x)
    cs_s = params.get('cluster_size', '65536')
    cs = int(cs_s[:-1]) << {'k': 10, 'K': 10, 'M': 20}[cs_s[-1]] if cs_s[-1] in 'kKM' \
        else int(cs_s)
    size = 2 * 1024 * 1024 if cs <= 1024 else 8 * 1024 * 1024
    backing = seed % 3 == 2 and 'data_file_raw' not in opts
    copts = opts.replace('DIR', d)
    if backing:
        base = os.path.join(d, 'b.qcow2')
        subprocess.run([ref_img, 'create', '-q', '-f', 'qcow2', base, str(size)], check=True)
        subprocess.run([ref_io, '-c', 'write -q -P 0x77 0 %d' % (size // 2), base], check=True)
        subprocess.run([ref_img, 'create', '-q', '-f', 'qcow2', '-o', copts, '-b', 'b.qcow2',
                        '-F', 'qcow2', img, str(size)], check=True)
        subprocess.run([ref_img, 'convert', '-O', 'raw', base, mirror], check=True)
    else:
        subprocess.run([ref_img, 'create', '-q', '-f', 'qcow2', '-o', copts, img, str(size)],
                       check=True)
        subprocess.run(['truncate', '-s', str(size), mirror], check=True)
    cmds, mcmds, written = [], [], set()
    compress_ok = 'data_file' not in opts
    for _ in range(ncmds):
        op = r.choice(['w', 'w', 'w', 'z', 'zu', 'd'] + (['wc'] if compress_ok else []))
        align = r.choice([1, 512, cs])
        off = r.randrange(0, size // align) * align
        ln = min(size - off, r.choice([512, 4096, cs, 3 * cs + 512, r.randrange(1, 4 * cs)]))
        if op == 'wc':
            off = off // cs * cs
            ln = min(cs, size - off)
            if off in written or ln < cs:
                continue
        if ln <= 0:
            continue
        for k in range(off // cs, (off + ln + cs - 1) // cs):
            written.add(k * cs)
        pat = r.randrange(1, 255)
        if op == 'w':
            cmds.append('write -q -P %d %d %d' % (pat, off, ln))
            mcmds.append(cmds[-1])
        elif op == 'wc':
            cmds.append('write -q -c -P %d %d %d' % (pat, off, ln))
            mcmds.append('write -q -P %d %d %d' % (pat, off, ln))
        elif op in ('z', 'zu'):
            cmds.append('write -q -z %s%d %d' % ('-u ' if op == 'zu' else '', off, ln))
            mcmds.append('write -q -z %d %d' % (off, ln))
        else:
            # discarded whole clusters read back as zeros (v3, no backing file)
            s, e = (off + cs - 1) // cs * cs, (off + ln) // cs * cs
            if e > s and not backing and 'compat=0.10' not in opts:
                cmds.append('discard -q %d %d' % (s, e - s))
                mcmds.append('write -q -z %d %d' % (s, e - s))
    args = [ours]
    for c in cmds:
        args += ['-c', c]
    rc, out = run(args + [img])
    if rc != 0:
        print('%s seed %d: our qemu-io failed: %s' % (opts, seed, out[:300]))
        return 1
    margs = [ref_io, '-f', 'raw']
    for c in mcmds:
        margs += ['-c', c]
    run(margs + [mirror])
    rc, out = run([ref_img, 'check', img])
    if rc != 0:
        print('%s seed %d: QEMU check: %s' % (opts, seed, out[-600:]))
        return 1
    rc, out = run([ref_img, 'compare', '-F', 'raw', img, mirror])
    if rc != 0:
        print('%s seed %d: QEMU compare: %s' % (opts, seed, out[:300]))
        return 1
    print('%s seed %d: ok' % (opts, seed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
