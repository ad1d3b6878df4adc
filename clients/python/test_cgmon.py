"""Tests of the cgmon Python client against a real cgmon (from $CGMON_BIN,
else PATH): `make pyclient-test` builds it and runs these."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgmon  # noqa: E402

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def setUpModule():
    # Fail loudly rather than skip: these tests are the client's gate.
    cgmon.find_cgmon()


class FindTest(unittest.TestCase):
    def test_env_names_a_missing_file(self):
        old = os.environ.get("CGMON_BIN")
        os.environ["CGMON_BIN"] = "/nonexistent/cgmon"
        try:
            with self.assertRaisesRegex(cgmon.CgmonError, r"\$CGMON_BIN names '/nonexistent/cgmon'"):
                cgmon.find_cgmon()
        finally:
            os.environ["CGMON_BIN"] = old

    def test_path_lookup(self):
        binary = cgmon.find_cgmon()
        old_env, old_path = os.environ.pop("CGMON_BIN", None), os.environ["PATH"]
        os.environ["PATH"] = os.path.dirname(binary) + os.pathsep + old_path
        try:
            self.assertEqual(os.path.realpath(cgmon.find_cgmon()), os.path.realpath(shutil_which_cgmon(os.environ["PATH"])))
            os.environ["PATH"] = "/nonexistent"
            with self.assertRaisesRegex(cgmon.CgmonError, "not found: put it on"):
                cgmon.find_cgmon()
        finally:
            os.environ["PATH"] = old_path
            if old_env is not None:
                os.environ["CGMON_BIN"] = old_env


def shutil_which_cgmon(path):
    import shutil
    return shutil.which("cgmon", path=path)


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.c = cgmon.Cgmon(parallel=4)
        self.addCleanup(self._close)

    def _close(self):
        if not self.c._closed:
            self.c.close()

    def test_run_returns_the_record(self):
        rec = self.c.run(["sh", "-c", "exit 3"], id="t-run", language="sh", code_length=11)
        self.assertEqual(rec["protocol"], cgmon.PROTOCOL)
        self.assertEqual((rec["id"], rec["language"], rec["code_length"]), ("t-run", "sh", 11))
        self.assertEqual((rec["status"], rec["exit_code"]), ("error", 3))
        self.assertEqual(rec["sources"]["execution_time_seconds"], "clock:monotonic")
        self.assertGreater(rec["execution_time_seconds"], 0)
        # Every number is measured with a source or null with a reason.
        for key in ("cpu_total_seconds", "memory_peak_bytes", "pids_peak"):
            self.assertTrue((rec[key] is not None and key in rec["sources"]) or
                            (rec[key] is None and key in rec["unavailable"]), key)

    def test_judge_fields(self):
        # What a judge passes: the submission's input and output files, a
        # CPU-time limit and an rlimit; cgmon applies each or rejects the run.
        with tempfile.TemporaryDirectory() as d:
            inp, out = os.path.join(d, "in.txt"), os.path.join(d, "out.txt")
            with open(inp, "w") as f:
                f.write("3 4\n")
            rec = self.c.run(["sh", "-c", "read a b; echo $((a+b)); ulimit -n"], stdin=inp, stdout=out,
                             rlimits=[{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}])
            self.assertEqual(rec["status"], "success", rec.get("reason"))
            with open(out) as f:
                self.assertEqual(f.read(), "7\n64\n")
        rec = self.c.run(["sh", "-c", "while :; do :; done"], cpu_time_limit=0.2, timeout=30)
        self.assertEqual(rec["status"], "cpu_timeout", rec.get("reason"))
        self.assertGreaterEqual(rec["cpu_total_seconds"], 0.2)
        with self.assertRaises(cgmon.RejectedError):
            self.c.run(["true"], no_such_field=1)

    def test_timeout_and_failed_start(self):
        t0 = time.monotonic()
        rec = self.c.run(["sleep", "10"], timeout=0.3)
        self.assertEqual(rec["status"], "timeout")
        self.assertLess(time.monotonic() - t0, 5)
        rec = self.c.run(["no-such-command-cgmon-py"])
        self.assertEqual(rec["status"], "failed_to_start")
        self.assertIsNone(rec["execution_time_seconds"])

    def test_threads_get_their_own_records(self):
        # 8 threads, 40 runs in all, each exiting with its own status:
        # every caller must get the record of its own command.
        def one(i):
            rec = self.c.run(["sh", "-c", "sleep 0.0%d; exit %d" % (i % 7, i % 50)])
            return i, rec

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(40)))
        for i, rec in results:
            self.assertEqual(rec["exit_code"], i % 50, rec)
        self.assertEqual(len({rec["id"] for _, rec in results}), 40)

    def test_outstanding_runs_complete_out_of_order(self):
        slow = self.c.submit(["sleep", "2"], id="slow")
        fast = self.c.submit(["true"], id="fast")
        self.assertEqual(fast.result(10)["id"], "fast")
        self.assertFalse(slow.done())
        self.assertEqual(slow.result(10)["id"], "slow")

    def test_wait_bound(self):
        # With a bound, the result is read by the module's own thread.
        import concurrent.futures
        t0 = time.monotonic()
        with self.assertRaises(concurrent.futures.TimeoutError):
            self.c.run(["sleep", "1"], wait=0.2)
        self.assertLess(time.monotonic() - t0, 0.9)
        self.assertEqual(self.c.run(["true"], wait=10)["status"], "success")
        # A submitted run's result arrives while nobody calls run().
        fut = self.c.submit(["sh", "-c", "exit 5"])
        self.assertEqual(fut.result(10)["exit_code"], 5)

    def test_rejected_run(self):
        with self.assertRaises(cgmon.RejectedError) as cm:
            self.c.run(["true"], id="a/b")
        self.assertEqual(cm.exception.record["status"], "rejected")
        self.assertEqual(cm.exception.record["id"], "a/b")
        self.assertIn("'/'", cm.exception.record["error"])
        with self.assertRaises(cgmon.RejectedError):
            self.c.run(["true"], limits={"cpu": 1})
        # The co-process goes on.
        self.assertEqual(self.c.run(["true"])["status"], "success")
        self.c.close()
        self.assertEqual(self.c.returncode, 1)

    def test_bad_arguments(self):
        with self.assertRaises(TypeError):
            self.c.submit("echo hi")
        self.c.submit(["sleep", "0.3"], id="dup")
        with self.assertRaisesRegex(ValueError, "already running"):
            self.c.submit(["true"], id="dup")

    def test_close_returns_the_summary(self):
        for code in (0, 0, 1):
            self.c.run(["sh", "-c", "exit %d" % code], language="sh")
        summary = self.c.close()
        self.assertEqual(self.c.returncode, 0)
        self.assertEqual(summary["summary"]["total_executions"], 3)
        self.assertEqual(summary["summary"]["success_count"], 2)
        self.assertEqual(summary["languages"]["sh"]["count"], 3)
        self.assertIs(self.c.close(), summary)
        with self.assertRaisesRegex(cgmon.CgmonError, "closed|ended"):
            self.c.run(["true"])

    def test_terminate_cancels_running(self):
        fut = self.c.submit(["sleep", "30"])
        wait_for_child(self.c._proc.pid, "sleep")
        t0 = time.monotonic()
        summary = self.c.terminate()
        self.assertEqual(self.c.returncode, 143)
        self.assertTrue(summary["interrupted"])
        self.assertEqual(fut.result(1)["status"], "canceled")
        self.assertLess(time.monotonic() - t0, 10)

    def test_cgmon_killed(self):
        id = "pykill-%d" % os.getpid()
        fut = self.c.submit(["sleep", "0.5"], id=id)
        wait_for_child(self.c._proc.pid, "sleep")
        self.c._proc.kill()
        # A cgmon killed with SIGKILL leaves its execution's cgroup behind
        # (a later monitor reaps such leaves): remove it here.
        self.addCleanup(remove_leftover_leaves, id)
        with self.assertRaisesRegex(cgmon.CgmonError, "ended before it answered"):
            fut.result(10)
        with self.assertRaises(cgmon.CgmonError):
            self.c.run(["true"])
        with self.assertRaises(cgmon.CgmonError):
            self.c.close()


def wait_for_child(pid, comm, timeout=20):
    """wait_for_child waits until process pid has a child named comm: the
    execution has started."""
    import glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in glob.glob("/proc/%d/task/*/children" % pid):
            try:
                children = open(f).read().split()
            except OSError:
                continue
            for c in children:
                try:
                    if open("/proc/%s/comm" % c).read().strip() == comm:
                        return
                except OSError:
                    pass
        time.sleep(0.02)
    raise AssertionError("process %d has no child %r after %d s" % (pid, comm, timeout))


def remove_leftover_leaves(id):
    """remove_leftover_leaves kills what is left in the cgroups of
    execution id under cgmon's execution root, and removes them."""
    import glob
    import json as _json
    doctor = subprocess.run([cgmon.find_cgmon(), "doctor", "--format", "json"], capture_output=True, check=True)
    root = _json.loads(doctor.stdout).get("root")
    if not root:
        return
    for leaf in glob.glob(os.path.join(root, id + "-*")):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(os.path.join(leaf, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        os.rmdir(leaf)


class EnvTest(unittest.TestCase):
    def test_env_reaches_the_command(self):
        with cgmon.Cgmon(env=dict(os.environ, CGMON_PY_TEST="yes")) as c:
            self.assertEqual(c.run(["sh", "-c", 'test "$CGMON_PY_TEST" = yes'])["exit_code"], 0)
        with cgmon.Cgmon() as c:
            self.assertEqual(c.run(["sh", "-c", 'test "$CGMON_PY_TEST" = yes'])["exit_code"], 1)


class ModuleRunTest(unittest.TestCase):
    def test_shared_client(self):
        rec = cgmon.run(["sh", "-c", "exit 4"])
        self.assertEqual(rec["exit_code"], 4)
        self.assertIs(cgmon._default_client(), cgmon._default_client())


class ExecutionMonitorTest(unittest.TestCase):
    def setUp(self):
        self.c = cgmon.Cgmon()
        self.addCleanup(self.c.close)

    def test_with_commands(self):
        m = cgmon.ExecutionMonitor(self.c)
        m.start_execution("e1", "python", 120, command=["sh", "-c", "sleep 0.2"])
        m.start_execution("e2", "python", 80, command=["sh", "-c", "exit 1"])
        m.start_execution("e3", "c", 10, command=["true"])
        stats = m.get_execution_stats()
        self.assertEqual((stats["total_executions"], stats["completed_executions"]), (3, 0))
        rec1 = m.end_execution("e1")
        self.assertEqual((rec1["id"], rec1["language"], rec1["code_length"], rec1["status"]), ("e1", "python", 120, "success"))
        m.end_execution("e2")
        m.end_execution("e3", status="wrong_answer", result={"stdout": ""})
        stats = m.get_execution_stats()
        self.assertEqual(stats["total_executions"], 3)
        self.assertEqual(stats["completed_executions"], 3)
        self.assertEqual(stats["success_count"], 1)
        self.assertEqual(stats["error_count"], 2)
        times = [e["record"]["execution_time_seconds"] for e in m.executions]
        self.assertAlmostEqual(stats["average_execution_time"], round(sum(times) / 3, 3), places=3)
        self.assertGreaterEqual(rec1["execution_time_seconds"], 0.2)
        e3 = m.executions[2]
        self.assertEqual((e3["status"], e3["cgmon_status"], e3["result"]), ("wrong_answer", "success", {"stdout": ""}))
        with self.assertRaises(KeyError):
            m.end_execution("nope")
        with self.assertRaises(ValueError):
            m.start_execution("e1", "python", 1, command=["true"])

    def test_without_a_command(self):
        m = cgmon.ExecutionMonitor(self.c)
        m.start_execution("x", "python", 5)
        time.sleep(0.05)
        self.assertIsNone(m.end_execution("x", "success"))
        e = m.executions[0]
        self.assertEqual(e["execution_time_source"], "caller:monotonic")
        self.assertGreaterEqual(e["execution_time"], 0.05)
        self.assertEqual(m.get_execution_stats()["success_count"], 1)


class ResourceMonitorTest(unittest.TestCase):
    def test_command(self):
        with cgmon.Cgmon(interval=0.02) as c:
            rm = cgmon.ResourceMonitor(c)
            rm.start_monitoring(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            rm.update_monitoring()
            u = rm.get_resource_usage(timeout=30)
        self.assertEqual(set(cgmon._USAGE_KEYS) - set(u), set())
        self.assertGreater(u["execution_time_seconds"], 0)
        for key in cgmon._USAGE_KEYS:
            self.assertTrue((u[key] is not None and key in u["sources"]) or
                            (u[key] is None and key in u["unavailable"]), (key, u))
        self.assertEqual(u["record"]["status"], "success")

    def test_pid(self):
        target = subprocess.Popen(["sleep", "0.6"])
        reaper = threading.Thread(target=target.wait)  # no zombie to watch
        reaper.start()
        self.addCleanup(reaper.join)
        rm = cgmon.ResourceMonitor()
        rm.start_monitoring(pid=target.pid, interval=0.05)
        u = rm.get_resource_usage(timeout=30)
        self.assertEqual(u["record"]["status"], "ended")
        self.assertGreater(u["cpu_samples"], 3)
        self.assertGreaterEqual(u["execution_time_seconds"], 0.3)

    def test_pid_stopped_early(self):
        target = subprocess.Popen(["sleep", "30"])
        self.addCleanup(target.wait)
        self.addCleanup(target.kill)
        rm = cgmon.ResourceMonitor()
        rm.start_monitoring(pid=target.pid, interval=0.05)
        time.sleep(1.5)  # cgmon watch has started watching
        u = rm.stop_monitoring()
        self.assertEqual(u["record"]["status"], "canceled")
        self.assertIsNone(target.poll(), "stopping the watch must leave the process running")

    def test_misuse(self):
        rm = cgmon.ResourceMonitor()
        with self.assertRaises(TypeError):
            rm.start_monitoring()
        with self.assertRaises(RuntimeError):
            rm.get_resource_usage()


class MetricsCollectorTest(unittest.TestCase):
    def test_cgmon_records(self):
        with cgmon.Cgmon() as c:
            recs = [c.run(["true"], language="python"), c.run(["sh", "-c", "exit 2"], language="python"),
                    c.run(["true"], language="c"), c.run(["no-such-command-cgmon-py"], language="c")]
            with self.assertRaises(cgmon.RejectedError) as cm:
                c.run(["true"], id="a/b")
        mc = cgmon.MetricsCollector()
        for r in recs:
            mc.record_execution(r)
        with self.assertRaises(ValueError):
            mc.record_execution(cm.exception.record)
        s = mc.get_summary()
        self.assertEqual((s["total_executions"], s["success_count"], s["error_count"]), (4, 2, 2))
        self.assertEqual(s["success_rate"], 50.0)
        measured = [r["execution_time_seconds"] for r in recs[:3]]
        self.assertAlmostEqual(s["total_execution_time"], round(sum(measured), 3), places=3)
        # The command that never started counts, but in no time.
        self.assertAlmostEqual(s["average_execution_time"], round(sum(measured) / 3, 3), places=3)
        langs = mc.get_language_stats()
        self.assertEqual(langs["python"]["count"], 2)
        self.assertEqual((langs["c"]["count"], langs["c"]["success_count"], langs["c"]["error_count"]), (2, 1, 1))
        self.assertAlmostEqual(langs["c"]["average_execution_time"], measured[2])
        mc.clear()
        self.assertEqual(mc.get_summary()["total_executions"], 0)

    def test_original_dicts(self):
        mc = cgmon.MetricsCollector()
        mc.record_execution({"language": "python", "status": "success", "execution_time": 0.5})
        mc.record_execution({"language": "python", "status": "error", "execution_time": 1.5})
        s = mc.get_summary()
        self.assertEqual((s["total_executions"], s["success_rate"], s["average_execution_time"], s["total_execution_time"]),
                         (2, 50.0, 1.0, 2.0))
        self.assertEqual(mc.get_language_stats()["python"]["average_execution_time"], 1.0)


class BenchTest(unittest.TestCase):
    """bench.py, whose figures are in BENCHMARKS.md, still runs."""

    def test_bench_runs(self):
        here = os.path.dirname(os.path.abspath(__file__))
        p = subprocess.run([sys.executable, os.path.join(here, "bench.py"), "-n", "3", "--cost", "3", "--bare"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for want in ("back to back  subprocess", "back to back  cgmon", "pause 20 ms   cgmon",
                     "bare, unbuffered", "voluntary", "load average"):
            self.assertIn(want, p.stdout)


class ReadmeTest(unittest.TestCase):
    """Every Python example in the README runs as printed."""

    def test_examples(self):
        with open(README) as f:
            text = f.read()
        blocks = re.findall(r"```python\n(.*?)```", text, re.S)
        self.assertGreater(len(blocks), 0, "the README shows no Python example")
        here = os.path.dirname(os.path.abspath(__file__))
        for block in blocks:
            with self.subTest(example=block.splitlines()[0]):
                with tempfile.TemporaryDirectory() as d:
                    p = subprocess.run([sys.executable, "-c", block], cwd=d, capture_output=True, text=True, timeout=60,
                                       env=dict(os.environ, PYTHONPATH=here))
                    self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
