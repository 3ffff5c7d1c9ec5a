"""Memory of a cgroup, for the browser service bench: the same measure for a
Swarm task (its container's cgroup) and for Playwright (a cgroup made here
with the task's CPU and memory limits), on cgroup v1 or v2.

  cgroup.py memdir PID              the memory cgroup directory of PID
  cgroup.py make NAME CPUS BYTES    a cgroup NAME (under this process's own) limited to
                                    CPUS and BYTES; its directories (memory, cpu) on stdout
  cgroup.py run MEMDIR CPUDIR -- COMMAND...   COMMAND inside them
  cgroup.py sample MEMDIR OUT       samples every 0.25 s until SIGTERM, then writes OUT
  cgroup.py rm DIR...               removes cgroups made by `make` (once empty)

`sample` reports the kernel's peak of the memory charged to the cgroup
(memory.peak, v1's memory.max_usage_in_bytes: anonymous, shared (/dev/shm) and
page cache, Chromium's code included) and the peak, over the samples, of
anonymous plus shared memory, which is what the journeys themselves hold.
"""
import json
import os
import signal
import sys
import time

ROOT = "/sys/fs/cgroup"
V2 = os.path.exists(f"{ROOT}/cgroup.controllers")


def own(pid, controller):
    for line in open(f"/proc/{pid}/cgroup"):
        _, controllers, path = line.rstrip("\n").split(":", 2)
        if V2 and controllers == "":
            return f"{ROOT}{path}".rstrip("/")
        if not V2 and controller in controllers.split(","):
            return f"{ROOT}/{controller}{path}".rstrip("/")
    sys.exit(f"no {controller} cgroup for pid {pid}")


def read(path):
    with open(path) as f:
        return f.read()


def write(path, value):
    with open(path, "w") as f:
        f.write(value)


def stat(memdir):
    fields = dict(line.split() for line in read(f"{memdir}/memory.stat").splitlines())
    if V2:
        return int(fields["anon"]) + int(fields["shmem"])
    return int(fields["total_rss"]) + int(fields["total_shmem"])


def peak(memdir):
    name = "memory.peak" if V2 else "memory.max_usage_in_bytes"
    try:
        return int(read(f"{memdir}/{name}"))
    except OSError:
        return None


def make(name, cpus, limit):
    memdir, cpudir = f"{own('self', 'memory')}/{name}", f"{own('self', 'cpu')}/{name}"
    for d in {memdir, cpudir}:
        os.mkdir(d)
    quota = int(float(cpus) * 100000)
    if V2:
        write(f"{memdir}/memory.max", limit)
        write(f"{cpudir}/cpu.max", f"{quota} 100000")
    else:
        write(f"{memdir}/memory.limit_in_bytes", limit)
        write(f"{cpudir}/cpu.cfs_period_us", "100000")
        write(f"{cpudir}/cpu.cfs_quota_us", str(quota))
    print(memdir, cpudir)


def sample(memdir, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    top_charged = top_held = 0
    samples = 0
    while not stop:
        try:
            top_charged = max(top_charged, int(read(f"{memdir}/{'memory.current' if V2 else 'memory.usage_in_bytes'}")))
            top_held = max(top_held, stat(memdir))
            samples += 1
        except OSError:
            break  # the cgroup is gone: the task ended
        time.sleep(0.25)
    kernel = peak(memdir)
    mib = 1048576
    with open(out, "w") as f:
        json.dump({
            "peak_charged_mib": round((kernel if kernel is not None else top_charged) / mib, 1),
            "peak_charged_from": "kernel" if kernel is not None else "samples",
            "peak_anon_shmem_mib": round(top_held / mib, 1),
            "samples": samples,
        }, f)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "memdir":
        print(own(args[0], "memory"))
    elif cmd == "make":
        make(*args)
    elif cmd == "run":
        for d in {args[0], args[1]}:
            write(f"{d}/cgroup.procs", str(os.getpid()))
        os.execvp(args[3], args[3:])
    elif cmd == "sample":
        sample(*args)
    elif cmd == "rm":
        # A process that just exited may keep its cgroup busy a moment.
        for d in args:
            for _ in range(50):
                try:
                    if os.path.isdir(d):
                        os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)
    else:
        sys.exit(__doc__)


main()
