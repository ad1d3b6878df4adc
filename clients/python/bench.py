"""bench.py measures the round trip of one run through the cgmon
co-process against subprocess.run of the same command, side by side.

A sandbox usually runs one submission, waits for its record, then runs the
next: this is that pattern. Each round does one subprocess.run and one
Cgmon.run per cgmon binary (in a shuffled order), back to back or with a
pause after each round, and the medians of each are compared.

    CGMON_BIN=bin/cgmon python3 clients/python/bench.py [-n 200] [--pause 0.02] [--cost 300] [-- /bin/true]
    python3 clients/python/bench.py --cgmon /tmp/cgmon-main --cgmon bin/cgmon   # two builds side by side
    python3 clients/python/bench.py --bare   # also the protocol without the module, read buffered and not

Without --pause it runs both modes: back to back, then with 20 ms pauses.
--cost N then runs N more back to back through each binary and prints what
cgmon itself spent per run: context switches of its threads (a voluntary
one is a thread that slept and was woken) and CPU time, which depend far
less on how busy the machine is than the round trip does.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgmon  # noqa: E402


class Bare:
    """Bare drives the protocol itself, without the module: write a line,
    read a line, parse it; unbuffered reads a byte per read(2), as
    Popen(bufsize=0) does."""

    def __init__(self, binary, unbuffered):
        self.proc = subprocess.Popen([binary, "batch", "-o", "-", "-"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     bufsize=0 if unbuffered else -1)
        self.n = 0

    def run(self, argv):
        self.n += 1
        self.proc.stdin.write(json.dumps({"id": "bare-%d" % self.n, "command": argv}).encode() + b"\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def measure(clients, argv, n, pause, warmup=20):
    """measure returns the round-trip times, in seconds, of n
    subprocess.run and n client.run of argv per client, interleaved."""
    times = {"subprocess": []}
    for name in clients:
        times[name] = []

    def one(name):
        t = time.perf_counter()
        if name == "subprocess":
            subprocess.run(argv)
        else:
            rec = clients[name].run(argv)
            if rec["status"] != "success":
                raise SystemExit("cgmon run of %s: %s" % (argv, rec.get("reason")))
        return time.perf_counter() - t

    for i in range(warmup + n):
        order = list(times)
        random.shuffle(order)
        for name in order:
            d = one(name)
            if i >= warmup:
                times[name].append(d)
        if pause:
            time.sleep(pause)
    return times


def cost(client, argv, n):
    """cost runs argv n times back to back through client and returns
    what cgmon itself spent per run: voluntary and involuntary context
    switches over all its threads and CPU time in seconds (from
    /proc/PID/stat, in clock ticks), excluding its children's."""
    pid = client._proc.pid

    def snapshot():
        vol = invol = 0
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return vol, invol, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = snapshot()
    for _ in range(n):
        client.run(argv)
    after = snapshot()
    return [(a - b) / n for a, b in zip(after, before)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="round trips of each kind per mode (default 200)")
    ap.add_argument("--pause", type=float, default=None, help="seconds to pause after each round (default: run 0 and 0.02)")
    ap.add_argument("--cgmon", action="append", default=None,
                    help="a cgmon binary; repeat to compare builds (default: $CGMON_BIN, else PATH)")
    ap.add_argument("--cost", type=int, default=0, metavar="N",
                    help="also run N times back to back and print cgmon's own context switches and CPU per run")
    ap.add_argument("--bare", action="store_true",
                    help="also drive the protocol without the module, buffered and unbuffered (first binary)")
    ap.add_argument("command", nargs="*", default=["/bin/true"])
    a = ap.parse_args()
    pauses = [0.0, 0.02] if a.pause is None else [a.pause]
    binaries = a.cgmon or [None]
    clients = {}
    try:
        for b in binaries:
            c = cgmon.Cgmon(b)
            clients[c.binary if len(binaries) > 1 else "cgmon"] = c
        if a.bare:
            first = next(iter(clients.values())).binary
            clients["bare protocol"] = Bare(first, False)
            clients["bare, unbuffered"] = Bare(first, True)
        print("command: %s; %d round trips of each kind per mode; medians (ratio to subprocess.run), p90"
              % (" ".join(a.command), a.n))
        for p in pauses:
            times = measure(clients, a.command, a.n, p)
            base = statistics.median(times["subprocess"])
            mode = "back to back" if p == 0 else "pause %g ms" % (p * 1e3)
            for name, ts in times.items():
                m = statistics.median(ts)
                p90 = statistics.quantiles(ts, n=10)[-1]
                print("  %-13s %-28s %8.3f ms (%.2fx)  p90 %8.3f ms" % (mode, name, m * 1e3, m / base, p90 * 1e3))
        if a.cost:
            for name, c in clients.items():
                if isinstance(c, Bare):
                    continue
                vol, invol, cpu = cost(c, a.command, a.cost)
                print("  %s per run (%d back to back): %.1f voluntary + %.1f involuntary context switches, %.0f us CPU"
                      % (name, a.cost, vol, invol, cpu * 1e6))
        print("load average: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        for c in clients.values():
            c.close()


if __name__ == "__main__":
    main()
