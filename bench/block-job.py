#!/usr/bin/env python3
"""The commit and stream workloads of bench/run: one block job through a
running qemu-storage-daemon, from the command to the job's end.

    block-job.py commit QMP     active commit of node "top" into its backing
                                file: block-commit, BLOCK_JOB_READY,
                                job-complete, then the job's end
    block-job.py stream QMP     block-stream of node "top": its backing file's
                                data copied into it, then the job's end

Prints the job's final length ("N bytes"), which bench/run checks (python3
standard library only; the QMP client is bench/qmp.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import Qmp  # noqa: E402


def wait_event(q, name, job, status=None):
    """Wait for event @name of job @job (BLOCK_JOB_* name it by "device"; a
    JOB_STATUS_CHANGE to @status); return its data."""
    while True:
        for i, e in enumerate(q.events):
            d = e.get('data', {})
            if e['event'] == name and job in (d.get('device'), d.get('id')) and \
                    status in (None, d.get('status')):
                del q.events[:i + 1]
                return d
        r = q.read()
        if 'event' in r:
            q.events.append(r)


def main():
    mode, qmp_path = sys.argv[1], sys.argv[2]
    q = Qmp(qmp_path)
    if mode == 'commit':
        q.cmd('block-commit', device='top', **{'job-id': 'j'})
        wait_event(q, 'BLOCK_JOB_READY', 'j')
        q.cmd('job-complete', id='j')
    elif mode == 'stream':
        q.cmd('block-stream', device='top', **{'job-id': 'j'})
    else:
        sys.exit('unknown mode %s' % mode)
    done = wait_event(q, 'BLOCK_JOB_COMPLETED', 'j')
    if 'error' in done:
        sys.exit('job failed: %s' % done['error'])
    wait_event(q, 'JOB_STATUS_CHANGE', 'j', 'null')
    print('%d bytes' % done['len'])


if __name__ == '__main__':
    main()
