"""bench.py measures the round trip of one run through the cgmon
co-process against subprocess.run of the same command, side by side.

A sandbox usually runs one submission, waits for its record, then runs the
next: this is that pattern. Each round does one subprocess.run and one
Cgmon.run (the order alternating), back to back or with a pause after each
round, and the medians of each are compared.

    CGMON_BIN=bin/cgmon python3 clients/python/bench.py [-n 200] [--pause 0.02] [-- /bin/true]

Without --pause it runs both modes: back to back, then with 20 ms pauses.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgmon  # noqa: E402


def measure(client, argv, n, pause, warmup=20):
    """measure returns the round-trip times, in seconds, of n
    subprocess.run and n client.run of argv, interleaved."""
    sub, co = [], []

    def one_sub():
        t = time.perf_counter()
        subprocess.run(argv)
        sub.append(time.perf_counter() - t)

    def one_co():
        t = time.perf_counter()
        rec = client.run(argv)
        co.append(time.perf_counter() - t)
        if rec["status"] != "success":
            raise SystemExit("cgmon run of %s: %s" % (argv, rec.get("reason")))

    for i in range(warmup + n):
        if i % 2:
            one_sub()
            one_co()
        else:
            one_co()
            one_sub()
        if pause:
            time.sleep(pause)
    return sub[warmup:], co[warmup:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="round trips of each kind per mode (default 200)")
    ap.add_argument("--pause", type=float, default=None, help="seconds to pause after each round (default: run 0 and 0.02)")
    ap.add_argument("--cgmon", default=None, help="the cgmon binary (default: $CGMON_BIN, else PATH)")
    ap.add_argument("--parallel", type=int, default=None, help="cgmon batch --parallel")
    ap.add_argument("command", nargs="*", default=["/bin/true"])
    a = ap.parse_args()
    pauses = [0.0, 0.02] if a.pause is None else [a.pause]
    client = cgmon.Cgmon(a.cgmon, parallel=a.parallel)
    try:
        print("command: %s; %d round trips of each kind per mode, medians; cgmon %s" % (" ".join(a.command), a.n, client.binary))
        print("%-15s %12s %12s %7s %12s %12s" % ("mode", "subprocess", "cgmon", "ratio", "sub p90", "cgmon p90"))
        for p in pauses:
            sub, co = measure(client, a.command, a.n, p)
            ms, mc = statistics.median(sub), statistics.median(co)
            q = lambda xs: statistics.quantiles(xs, n=10)[-1]
            mode = "back to back" if p == 0 else "pause %g ms" % (p * 1e3)
            print("%-15s %9.3f ms %9.3f ms %6.2fx %9.3f ms %9.3f ms" % (mode, ms * 1e3, mc * 1e3, mc / ms, q(sub) * 1e3, q(co) * 1e3))
    finally:
        client.close()


if __name__ == "__main__":
    main()
