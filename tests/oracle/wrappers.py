# Wrapper scripts around Debian's QEMU binaries (the oracle) for our test
# runners: each wrapper execs the real binary with precise-rusage.c preloaded
# (see there for why), and can rewrite arguments (qemu-system's -accel qtest).
# If no C compiler is at hand, the wrappers run the binaries without it.
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def build_preload(bindir):
    """Compile the getrusage shim into bindir; its path, or None."""
    cc = shutil.which('cc') or shutil.which('gcc')
    if not cc:
        return None
    out = os.path.join(bindir, 'precise-rusage.so')
    r = subprocess.run([cc, '-O2', '-shared', '-fPIC', '-o', out,
                        os.path.join(HERE, 'precise-rusage.c'), '-ldl'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out if r.returncode == 0 else None


def make_wrapper(bindir, name, target, preload, qtest_to_tcg=False):
    """bindir/name runs target with its arguments; returns the wrapper path."""
    path = os.path.join(bindir, name)
    lines = ['#!/bin/bash', '# written by tests/oracle/wrappers.py']
    if preload:
        lines.append(f'export LD_PRELOAD={preload}${{LD_PRELOAD:+:$LD_PRELOAD}}')
    if qtest_to_tcg:
        lines += ['# -accel qtest -> -accel tcg: Debian builds no qtest accel',
                  'args=(); prev=',
                  'for a in "$@"; do',
                  '    [ "$prev" = -accel ] && [ "$a" = qtest ] && a=tcg',
                  '    args+=("$a"); prev=$a',
                  'done',
                  f'exec -a {target} {target} "${{args[@]}}"']
    else:
        lines.append(f'exec -a {target} {target} "$@"')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(path, 0o755)
    return path
