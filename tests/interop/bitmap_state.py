#!/usr/bin/env python3
"""Print the persistent dirty bitmaps of a qcow2 image as QEMU sees them.

  bitmap_state.py QEMU_STORAGE_DAEMON IMAGE

Opens IMAGE read-only in the given qemu-storage-daemon (Debian's: the oracle),
and prints one line per bitmap: name, dirty byte count, recording, granularity
and the first 16 hex digits of x-debug-block-dirty-bitmap-sha256. Errors QEMU
reports (an image it refuses, an inconsistent bitmap) are printed instead.
"""
import json
import subprocess
import sys


def main():
    qsd, image = sys.argv[1:3]
    cmds = [{"execute": "qmp_capabilities"},
            {"execute": "query-named-block-nodes", "arguments": {"flat": True}}]
    proc = subprocess.run(
        [qsd, "--chardev", "stdio,id=m", "--monitor", "chardev=m",
         "--blockdev", "driver=file,filename=%s,node-name=f,read-only=on" % image,
         "--blockdev", "driver=qcow2,file=f,node-name=q,read-only=on"],
        input="".join(json.dumps(c) + "\n" for c in cmds) + '{"execute": "quit"}\n',
        capture_output=True, text=True, timeout=60)
    if proc.returncode:
        print("qemu-storage-daemon failed:", proc.stderr.strip())
        return
    names = []
    for line in proc.stdout.splitlines():
        ret = json.loads(line).get("return")
        if isinstance(ret, list):
            for node in ret:
                if node["node-name"] == "q":
                    names = node.get("dirty-bitmaps", [])
    # a second run for the hashes: they need the names
    cmds = [{"execute": "qmp_capabilities"}] + [
        {"execute": "x-debug-block-dirty-bitmap-sha256",
         "arguments": {"node": "q", "name": b["name"]}} for b in names]
    proc = subprocess.run(
        [qsd, "--chardev", "stdio,id=m", "--monitor", "chardev=m",
         "--blockdev", "driver=file,filename=%s,node-name=f,read-only=on" % image,
         "--blockdev", "driver=qcow2,file=f,node-name=q,read-only=on"],
        input="".join(json.dumps(c) + "\n" for c in cmds) + '{"execute": "quit"}\n',
        capture_output=True, text=True, timeout=60)
    hashes = []
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if isinstance(msg.get("return"), dict) and "sha256" in msg["return"]:
            hashes.append(msg["return"]["sha256"][:16])
        elif "error" in msg:
            hashes.append(msg["error"]["desc"])
    for b, h in sorted(zip(names, hashes), key=lambda p: p[0]["name"]):
        print("%s count=%d recording=%s granularity=%d sha256=%s" % (
            b["name"], b["count"], str(b["recording"]).lower(), b["granularity"], h))

if __name__ == "__main__":
    main()
