"""Runs one command and reports its wall time and the peak resident memory of
its whole process tree (the command, Chromium and every helper it starts), as
one JSON line: {"wall_ms": .., "peak_rss_mib": .., "exit": ..}.

The tree is sampled every 10 ms from /proc (statm: cheap enough not to slow
what it measures). RSS is summed over processes, so pages Chromium's
processes share count once per process; both tools measured here run the
same Chromium the same way, so the sums compare.
Usage: measure.py COMMAND [ARGS...]
"""
import json
import os
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            continue
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree_rss(root):
    kids = children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
        todo.extend(kids.get(pid, []))
    return total


def main():
    start = time.monotonic()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.01)
    wall = time.monotonic() - start
    print(json.dumps({"wall_ms": round(wall * 1000, 1), "peak_rss_mib": round(peak / 1048576, 1), "exit": proc.returncode}))


main()
