"""A minimal QMP client for the bench scripts (python3 standard library only):
commands with their replies, events kept for whoever waits for them."""
import json
import socket
import sys


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile('rw')
        self.events = []
        self.read()                                     # greeting
        self.cmd('qmp_capabilities')

    def read(self):
        line = self.f.readline()
        if not line:
            sys.exit('QMP: connection closed')
        return json.loads(line)

    def cmd(self, command, **args):
        self.f.write(json.dumps({'execute': command, 'arguments': args}) + '\n')
        self.f.flush()
        while True:
            r = self.read()
            if 'event' in r:
                self.events.append(r)
                continue
            if 'error' in r:
                sys.exit('QMP %s: %s' % (command, r['error']['desc']))
            return r['return']

    def wait_job(self, job, status):
        while True:
            for e in self.events:
                d = e.get('data', {})
                if e['event'] == 'JOB_STATUS_CHANGE' and d.get('id') == job and \
                        d.get('status') == status:
                    self.events = []
                    return
            self.events = []
            r = self.read()
            if 'event' in r:
                self.events.append(r)
