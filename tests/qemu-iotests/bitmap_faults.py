#!/usr/bin/env python3
"""Fault injection into qemu-img bitmap (iotest 216); python3 stdlib only.

  bitmap_faults.py OUR_QEMU_IMG REF_QEMU_IMG REF_QEMU_IO REF_QSD

An image with data and three bitmaps (two of them with dirty bits) gets one
command of ours that adds, removes, clears, disables and merges bitmaps. The
command runs once per fault point: blkdebug fails the k-th write, flush or
cluster allocation of the image file. Afterwards QEMU opens the image, its
check finds no corruption (leaks allowed), and the bitmaps are as before the
command, or as after some prefix of its actions (QEMU too keeps the actions
done before one fails), each bitmap possibly left in_use (never in_use-free
with wrong bits). Prints one summary line; exit 1 on failure.
"""
import json
import os
import subprocess
import sys

OURS, REF_IMG, REF_IO, REF_QSD = sys.argv[1:5]
HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.path.join(HERE, '..', 'interop', 'bitmap_state.py')
ACTIONS = ['--add', '--merge', 'b0', '--remove', '--add', '--clear']  # on bitmap b1
EVENTS = ['pwritev', 'flush_to_disk', 'flush_to_os', 'cluster_alloc', 'cluster_free',
          'refblock_update', 'refblock_alloc']


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True)


def make_image():
    for f in ('t.qcow2',):
        if os.path.exists(f):
            os.unlink(f)
    run([REF_IMG, 'create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', 't.qcow2', '8M'])
    for args in (['b0'], ['-g', '512', 'b1'], ['--disable', 'b2']):
        run([REF_IMG, 'bitmap', '--add'] + args[:-1] + ['t.qcow2', args[-1]])
    run([REF_IO, '-c', 'write 0 64k', '-c', 'write 3M 5000', 't.qcow2'])


def state():
    """name -> (in_use, state line) as QEMU sees it; None if QEMU refuses."""
    p = run(['python3', STATE, REF_QSD, 't.qcow2'])
    if p.stdout.startswith('qemu-storage-daemon failed'):
        return None
    info = json.loads(run([REF_IMG, 'info', '--output=json', 't.qcow2']).stdout)
    flags = {b['name']: 'in-use' in b['flags']
             for b in info.get('format-specific', {}).get('data', {}).get('bitmaps', [])}
    return {line.split()[0]: (flags.get(line.split()[0]), line)
            for line in p.stdout.splitlines()}


# each command: its actions (groups of arguments, applied in order) and bitmap
COMMANDS = [
    ([['--remove'], ['--add', '-g', '4k'], ['--merge', 'b0']], 'b1'),
    ([['--clear'], ['--disable']], 'b0'),
    ([['--add']], 'b3'),
]


def argv(step, rules, n_actions=None):
    spec = {'driver': 'qcow2', 'file': {'driver': 'file', 'filename': 't.qcow2'}}
    if rules:
        spec['file'] = dict(rules, driver='blkdebug', image=spec['file'])
    actions, bitmap = COMMANDS[step]
    args = [a for group in actions[:n_actions] for a in group]
    return [OURS, 'bitmap'] + args + ['json:' + json.dumps(spec), bitmap]


def main():
    # the legitimate end states of each command: the state before it and after
    # each prefix of its actions (QEMU too keeps the actions done before one fails)
    candidates = []
    for step in range(len(COMMANDS)):
        states = []
        for n in range(len(COMMANDS[step][0]) + 1):
            make_image()
            for prev in range(step):
                run(argv(prev, None))
            if n:
                p = run(argv(step, None, n))
                if p.returncode:
                    print('baseline failed:', p.stderr)
                    return 1
            states.append(state())
        candidates.append(states)
    failures, points = [], 0
    for step in range(len(COMMANDS)):
        for event in EVENTS:
            clean = 0
            for k in range(1, 80):
                rules = {'set-state': [{'event': event, 'state': i, 'new_state': i + 1}
                                       for i in range(1, k)] or None,
                         'inject-error': [{'event': event, 'state': k, 'once': True,
                                           'errno': 5}]}
                rules = {a: b for a, b in rules.items() if b}
                make_image()
                for prev in range(step):
                    run(argv(prev, None))
                p = run(argv(step, rules))
                if p.returncode == 0:
                    # absorbed (a failed load at open is retried) or fewer than k
                    # occurrences: done with this event after a few in a row
                    clean += 1
                    if clean == 4:
                        break
                    continue
                clean = 0
                if p.returncode != 1:
                    failures.append('%s #%d step %d: exit %d %s' % (
                        event, k, step, p.returncode, p.stderr[-500:]))
                    continue
                points += 1
                chk = run([REF_IMG, 'check', 't.qcow2'])
                if chk.returncode not in (0, 3):
                    failures.append('%s #%d step %d: check exit %d\n%s%s' % (
                        event, k, step, chk.returncode, chk.stdout, chk.stderr))
                    continue
                now = state()
                if now is None:
                    failures.append('%s #%d step %d: QEMU refuses the image' % (
                        event, k, step))
                    continue
                ok = False
                for cand in candidates[step]:
                    # each bitmap: as in that state, or in_use (not trusted)
                    if set(now) == set(cand) and \
                       all(now[n][0] or now[n][1] == cand[n][1] for n in now):
                        ok = True
                if not ok:
                    failures.append('%s #%d step %d: bitmaps in no state the command allows:'
                                    '\n  %s' % (event, k, step, sorted(now.items())))
    if failures or points < 10:
        print('%d fault points, %d FAILED' % (points, len(failures)))
        for f in failures[:10]:
            print(f)
        return 1
    print('qemu-img bitmap: fault points consistent')
    if os.environ.get('BITMAP_FAULTS_VERBOSE'):
        print('%d fault points' % points)
    return 0


if __name__ == '__main__':
    sys.exit(main())
