"""Run commands under cgmon from Python, through its batch co-process.

cgmon runs each command in its own cgroup and returns an exact, labelled
record of what it used. This module starts one long-lived
``cgmon batch - -o -`` process and talks to it with the documented line
protocol (one JSON object per line each way, results matched by id), so
that a run costs a line written and a line read, not a process start.

    import cgmon

    with cgmon.Cgmon() as c:
        rec = c.run(["python3", "-c", "print(1)"], language="python", timeout=5)
        print(rec["status"], rec["execution_time_seconds"], rec["memory_peak_bytes"])

Also here, with the API of the monitoring module cgmon replaces:
ExecutionMonitor, ResourceMonitor and MetricsCollector, backed by
cgmon's numbers. Standard library only; Python 3.8 or later; Linux.
"""

import collections
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future

__all__ = [
    "PROTOCOL",
    "CgmonError",
    "RejectedError",
    "Cgmon",
    "find_cgmon",
    "run",
    "ExecutionMonitor",
    "ResourceMonitor",
    "MetricsCollector",
]

#: PROTOCOL is the version of cgmon's batch protocol this module speaks.
PROTOCOL = 1

#: STATUS_REJECTED is the status of a result line for an input line that
#: cgmon did not run.
STATUS_REJECTED = "rejected"


class CgmonError(Exception):
    """CgmonError is cgmon itself failing: not found, exited, or speaking
    another protocol version. Its stderr attribute holds the last lines
    cgmon wrote on its standard error."""

    def __init__(self, message, stderr=""):
        if stderr:
            message = message + "; cgmon said: " + stderr.strip()
        super().__init__(message)
        self.stderr = stderr


class RejectedError(CgmonError, ValueError):
    """RejectedError is a run that cgmon refused before running anything
    (a bad id, a limit this host cannot apply, a malformed option). Its
    record attribute is cgmon's result line, with the reason in "error"."""

    def __init__(self, record):
        super().__init__("cgmon rejected the run: " + str(record.get("error", "")))
        self.record = record


def find_cgmon(binary=None):
    """find_cgmon returns the path of the cgmon binary: binary when given,
    else $CGMON_BIN, else the first cgmon on $PATH. It raises CgmonError
    when none is executable."""
    for candidate, origin in ((binary, "the binary argument"), (os.environ.get("CGMON_BIN"), "$CGMON_BIN")):
        if candidate:
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
            raise CgmonError("%s names %r, which is not an executable file" % (origin, candidate))
    found = shutil.which("cgmon")
    if found:
        return found
    raise CgmonError("cgmon not found: put it on $PATH or set $CGMON_BIN to its path")


class Cgmon:
    """Cgmon is one cgmon batch co-process. It is safe to use from several
    threads at once: each run is matched to its result by its id.

    binary: the cgmon binary (default: $CGMON_BIN, else cgmon on $PATH).
    parallel: how many runs cgmon executes at once (cgmon's default: the
        number of CPUs); more submitted runs wait in line.
    interval: the sampling interval in seconds (cgmon's default: 0.1).
    backend, cgroup_root: as cgmon's --backend and --cgroup-root.
    args: more command-line flags for ``cgmon batch``.
    """

    def __init__(self, binary=None, *, parallel=None, interval=None, backend=None,
                 cgroup_root=None, args=(), env=None):
        self.binary = find_cgmon(binary)
        self._dir = tempfile.mkdtemp(prefix="cgmon-py-")
        self._summary_path = os.path.join(self._dir, "summary.json")
        argv = [self.binary, "batch", "-o", "-", "--format", "json", "--summary", self._summary_path]
        if parallel is not None:
            argv += ["--parallel", str(int(parallel))]
        if interval is not None:
            argv += ["--interval", "%dus" % round(float(interval) * 1e6)]
        if backend is not None:
            argv += ["--backend", backend]
        if cgroup_root is not None:
            argv += ["--cgroup-root", cgroup_root]
        argv += list(args) + ["-"]
        # _lock guards the state below, and _cv (on it) wakes whoever
        # waits for a result or for the reading role. _wlock orders the
        # writes (and so the input line numbers) and is never held with
        # _lock across a write that may block while cgmon is busy.
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._wlock = threading.Lock()
        self._pending = {}   # id -> Future
        self._by_line = {}   # input line -> id
        self._line = 0       # input lines written
        self._ids = itertools.count(1)
        self._closed = False
        self._dead = None    # CgmonError once cgmon has gone
        self._eof = False    # its results have been read to the end
        self._reading = False  # a thread is reading results
        self._callers = 0    # run() callers that will read their own result
        self._stderr = collections.deque(maxlen=20)
        self.returncode = None
        self.summary = None
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env)
        except OSError as e:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise CgmonError("starting %s: %s" % (self.binary, e)) from e
        self._pump = threading.Thread(target=self._pump_results, name="cgmon-results", daemon=True)
        self._errors = threading.Thread(target=self._read_stderr, name="cgmon-stderr", daemon=True)
        self._pump.start()
        self._errors.start()

    # The protocol.

    def submit(self, command, *, id=None, language=None, code_length=None, timeout=None,
               limits=None, wait_all=False, **fields):
        """submit starts command (a list of strings: the argv) under cgmon
        and returns a concurrent.futures.Future of its record (a dict: the
        JSON result line). The future raises RejectedError when cgmon
        refused the run, CgmonError when cgmon went away first.

        id: the execution's id (default: one made unique in this process);
            no '/', no NUL, no '..', at most 200 bytes.
        language, code_length: labels of the record.
        timeout: wall-clock limit in seconds (status "timeout" when hit).
        limits: an OCI LinuxResources dict, e.g. {"memory": {"limit": 268435456}}.
        wait_all: wait for every process of the command, not only the first.
        fields: more fields of the batch line, as cgmon's README lists them:
            cpu_time_limit (seconds of CPU time, status "cpu_timeout"),
            stdin, stdout, stderr (file paths), env (a list of "KEY=VALUE"),
            dir, rlimits (OCI POSIXRlimit dicts, e.g.
            {"type": "RLIMIT_FSIZE", "soft": 1048576, "hard": 1048576}),
            user ("65534:65534" or {"uid": ..., "gid": ...}). An unknown
            field is rejected by cgmon, never dropped.
        """
        return self._submit(command, False, id, language, code_length, timeout, limits, wait_all, fields)

    def run(self, command, *, wait=None, id=None, language=None, code_length=None, timeout=None,
            limits=None, wait_all=False, **fields):
        """run runs command under cgmon and returns its record once it has
        ended; the options are those of submit. wait bounds the wait in
        seconds (concurrent.futures.TimeoutError past it; the run goes on)."""
        # A caller without a bound on its wait reads its own result, which
        # saves handing it over from another thread.
        reads = wait is None
        fut = self._submit(command, reads, id, language, code_length, timeout, limits, wait_all, fields)
        try:
            self._await(fut, wait, reads)
        finally:
            if reads:
                with self._lock:
                    self._callers -= 1
                    self._cv.notify_all()
        return fut.result(0)

    def close(self, wait=None):
        """close ends the input: runs already submitted finish and deliver
        their records, then cgmon exits. It returns cgmon's summary of
        every run (total_executions, per-language tables, percentiles...)
        and sets returncode (0, or 1 when a run was rejected). Closing
        twice returns the same summary."""
        with self._wlock:
            with self._lock:
                already = self._closed
                self._closed = True
            if not already:
                try:
                    self._proc.stdin.close()
                except OSError:
                    pass
        return self._finish(wait)

    def terminate(self, wait=None):
        """terminate sends cgmon SIGTERM: running executions are killed and
        their futures get records with status "canceled"; runs not started
        yet fail with CgmonError. It returns the summary as close does
        (returncode is then 143)."""
        with self._lock:
            self._closed = True
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self._finish(wait, ok=(0, 1, 128 + signal.SIGTERM))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # Inside.

    def _submit(self, command, reads, id, language, code_length, timeout, limits, wait_all, fields=None):
        if isinstance(command, (str, bytes)) or not command:
            raise TypeError("command must be a non-empty list of strings (the argv), not %r" % (command,))
        req = {"command": [str(a) for a in command]}
        if language is not None:
            req["language"] = str(language)
        if code_length is not None:
            req["code_length"] = int(code_length)
        if timeout is not None:
            req["timeout"] = float(timeout)
        if limits is not None:
            req["limits"] = limits
        if wait_all:
            req["wait_all"] = True
        for k, v in (fields or {}).items():
            if v is None:
                continue
            if k == "cpu_time_limit":
                v = float(v)
            req[k] = v
        fut = Future()
        with self._wlock:
            with self._lock:
                if self._closed:
                    raise CgmonError("this Cgmon is closed")
                if self._dead is not None:
                    raise self._dead
                if id is None:
                    id = "py%d-%d" % (os.getpid(), next(self._ids))
                id = str(id)
                if id in self._pending:
                    raise ValueError("id %r is already running; ids must be unique among running executions" % id)
                req["id"] = id
                self._line += 1
                line = self._line
                self._pending[id] = fut
                self._by_line[line] = id
                if reads:
                    self._callers += 1
                else:
                    self._cv.notify_all()  # the pump reads for it
            data = (json.dumps(req, separators=(",", ":")) + "\n").encode()
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                with self._lock:
                    self._pending.pop(id, None)
                    self._by_line.pop(line, None)
                    if reads:
                        self._callers -= 1
                    self._cv.notify_all()
                raise self._gone("cgmon stopped reading its input")
        return fut

    def _await(self, fut, wait, reads):
        """_await waits until fut is done, at most wait seconds; with reads
        it reads results itself whenever no other thread does."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._lock:
            while not fut.done():
                if reads and not self._reading and not self._eof:
                    self._read_one_locked()
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._cv.wait(remaining)

    def _pump_results(self):
        """_pump_results reads the results of runs nobody reads for: those
        of submit, and those of a run() caller that is slow to read (its
        write blocked while cgmon was busy), after 10 ms."""
        with self._lock:
            while not self._eof:
                if self._reading or not (self._pending or self._closed):
                    self._cv.wait()
                    continue
                if self._callers > 0 and self._cv.wait(0.01):
                    continue  # something changed: look again
                if not self._reading and not self._eof:
                    self._read_one_locked()

    def _read_one_locked(self):
        """_read_one_locked reads one result line, or the end of cgmon's
        output, with _lock held on entry and on return (not while reading)."""
        self._reading = True
        self._lock.release()
        try:
            raw = self._proc.stdout.readline()
            if raw:
                self._deliver(raw)
            else:
                self._at_eof()
        finally:
            self._lock.acquire()
            self._reading = False
            self._cv.notify_all()

    def _at_eof(self):
        self._proc.wait()
        self._errors.join()
        with self._lock:
            self._eof = True
            if self._dead is None:
                self._dead = self._gone("cgmon ended before it answered")
            pending, self._pending = self._pending, {}
            self._by_line.clear()
        for fut in pending.values():
            fut.set_exception(self._dead)

    def _finish(self, wait, ok=(0, 1)):
        self._proc.wait(wait)
        with self._lock:
            self._cv.notify_all()  # closed: the pump reads to the end
        self._pump.join()
        self._errors.join()
        with self._lock:
            if self.summary is None and os.path.exists(self._summary_path):
                try:
                    with open(self._summary_path) as f:
                        self.summary = json.load(f)
                except (OSError, ValueError):
                    self.summary = None
            shutil.rmtree(self._dir, ignore_errors=True)
        self.returncode = self._proc.returncode
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.stdout.close()
        self._proc.stderr.close()
        if self.returncode not in ok:
            raise CgmonError("cgmon batch exited with status %d" % self.returncode, self._stderr_text())
        return self.summary

    def _stderr_text(self):
        return "\n".join(self._stderr)

    def _gone(self, why):
        code = self._proc.poll()
        if code is not None:
            why += " (it exited with status %d)" % code
        return CgmonError(why, self._stderr_text())

    def _read_stderr(self):
        for raw in self._proc.stderr:
            self._stderr.append(raw.decode(errors="replace").rstrip("\n"))

    def _deliver(self, raw):
        try:
            rec = json.loads(raw)
        except ValueError:
            self._stderr.append("not a result line: %r" % raw[:200])
            return
        if rec.get("protocol") != PROTOCOL:
            self._stderr.append("result line of protocol %r, want %d" % (rec.get("protocol"), PROTOCOL))
        with self._lock:
            id = self._by_line.pop(rec.get("input_line"), None)
            if id is None or (rec.get("id") and rec.get("id") != id):
                id = rec.get("id")
            fut = self._pending.pop(id, None)
        if fut is None:
            return
        if rec.get("status") == STATUS_REJECTED:
            fut.set_exception(RejectedError(rec))
        else:
            fut.set_result(rec)


_default = None
_default_lock = threading.Lock()


def _default_client():
    global _default
    with _default_lock:
        if _default is None or _default._closed or _default._dead is not None:
            _default = Cgmon()
            import atexit
            atexit.register(_default.close)
        return _default


def run(command, **options):
    """run runs command under a cgmon co-process shared by the whole
    program (started on first use, closed at exit) and returns its record;
    options are those of Cgmon.submit, plus wait."""
    return _default_client().run(command, **options)


# The API of the monitoring module cgmon replaces, backed by cgmon.


def _execution_time(rec):
    """_execution_time returns a record's wall time in seconds, or None
    when cgmon could not measure it (a command that never started)."""
    if "schema_version" in rec:
        return rec.get("execution_time_seconds")
    return rec.get("execution_time")


class ExecutionMonitor:
    """ExecutionMonitor tracks executions as the original module's did,
    with cgmon's numbers: start_execution with a command runs it under
    cgmon, end_execution waits for its record.

    client: the Cgmon to run commands with (default: the shared one).
    """

    def __init__(self, client=None):
        self._client = client
        self._lock = threading.Lock()
        self.executions = []
        self._by_id = {}

    def start_execution(self, execution_id, language, code_length, command=None, **options):
        """start_execution begins tracking an execution. With command (an
        argv list) it starts it under cgmon at once, labelled with
        execution_id, language and code_length; options are those of
        Cgmon.submit (timeout, limits, wait_all). Without a command only
        the caller's wall clock is kept, as the original module did, and
        the time is labelled as such ("execution_time_source")."""
        entry = {"execution_id": execution_id, "language": language, "code_length": code_length,
                 "start_time": time.time(), "status": "running"}
        if command is not None:
            client = self._client or _default_client()
            entry["_future"] = client.submit(command, id=execution_id, language=language,
                                             code_length=code_length, **options)
        else:
            entry["_t0"] = time.monotonic()
        with self._lock:
            if execution_id in self._by_id:
                raise ValueError("execution %r is already tracked" % (execution_id,))
            self._by_id[execution_id] = entry
            self.executions.append(entry)

    def end_execution(self, execution_id, status=None, result=None):
        """end_execution completes tracking and returns cgmon's record (or
        None for an execution started without a command). For a command
        it waits until it has ended. status is the caller's verdict, which
        the statistics count when given (e.g. "wrong_answer" for a run
        that exited 0); without it, cgmon's status is counted. A run that
        cgmon rejected ends with status "rejected" and its record."""
        with self._lock:
            entry = self._by_id.get(execution_id)
        if entry is None:
            raise KeyError("execution %r was not started" % (execution_id,))
        rec = None
        fut = entry.pop("_future", None)
        if fut is not None:
            try:
                rec = fut.result()
            except RejectedError as e:
                rec = e.record
            entry["record"] = rec
            entry["execution_time"] = rec.get("execution_time_seconds")
            entry["execution_time_source"] = (rec.get("sources") or {}).get("execution_time_seconds")
            entry["cgmon_status"] = rec.get("status")
            final = status or rec.get("status")
        else:
            t0 = entry.pop("_t0")
            entry["execution_time"] = time.monotonic() - t0
            entry["execution_time_source"] = "caller:monotonic"
            final = status or "unknown"
        with self._lock:
            entry["end_time"] = time.time()
            entry["status"] = final
            if result:
                entry["result"] = result
        return rec

    def get_execution_stats(self):
        """get_execution_stats returns total_executions,
        completed_executions, average_execution_time (seconds, over the
        completed executions whose time was measured), success_count and
        error_count (completed executions whose status is or is not
        "success")."""
        with self._lock:
            done = [e for e in self.executions if "end_time" in e]
            times = [e["execution_time"] for e in done if e.get("execution_time") is not None]
            ok = sum(1 for e in done if e["status"] == "success")
            return {
                "total_executions": len(self.executions),
                "completed_executions": len(done),
                "average_execution_time": round(sum(times) / len(times), 3) if times else None,
                "success_count": ok,
                "error_count": len(done) - ok,
            }


#: _USAGE_KEYS are the figures of the original ResourceMonitor.
_USAGE_KEYS = ("execution_time_seconds", "memory_start_mb", "memory_peak_mb",
               "cpu_samples", "cpu_average_percent", "cpu_peak_percent")


class ResourceMonitor:
    """ResourceMonitor measures one workload's CPU and memory as the
    original module's did, with the original figures, but of the workload
    (never of the Python process) and from cgmon's sampler and the
    kernel's counters.

    start_monitoring(command) runs a command under cgmon;
    start_monitoring(pid=N) watches a process that is already running
    (``cgmon watch --pid N``) without touching it.
    """

    def __init__(self, client=None):
        self._client = client
        self._future = None
        self._watch = None
        self._record = None

    def start_monitoring(self, command=None, *, pid=None, interval=None, **options):
        """start_monitoring starts the command under cgmon (options as
        Cgmon.submit), or watches process pid until it ends; interval is
        the watch's sampling interval in seconds."""
        if (command is None) == (pid is None):
            raise TypeError("give either a command or a pid")
        self._record = None
        if command is not None:
            client = self._client or _default_client()
            self._future = client.submit(command, **options)
            return
        binary = self._client.binary if self._client is not None else find_cgmon()
        argv = [binary, "watch", "--pid", str(int(pid)), "--format", "json", "-o", "/dev/stdout"]
        if interval is not None:
            argv += ["--interval", "%dus" % round(float(interval) * 1e6)]
        self._watch = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def update_monitoring(self):
        """update_monitoring is kept for the original API and does nothing:
        cgmon samples the workload every interval by itself."""

    def stop_monitoring(self):
        """stop_monitoring stops watching a pid now (the process is left
        running) and returns its figures; for a command it waits for it."""
        if self._watch is not None and self._watch.poll() is None:
            self._watch.send_signal(signal.SIGTERM)
        return self.get_resource_usage()

    def get_resource_usage(self, timeout=None):
        """get_resource_usage waits for the workload to end (at most
        timeout seconds) and returns the original figures:
        execution_time_seconds, memory_start_mb, memory_peak_mb (MiB),
        cpu_samples, cpu_average_percent, cpu_peak_percent. A figure cgmon
        could not measure is None, with its reason under "unavailable";
        "sources" says where each measured one came from, and "record" is
        cgmon's whole record."""
        rec = self._wait(timeout)
        usage = {k: rec.get(k) for k in _USAGE_KEYS}
        usage["sources"] = {k: v for k, v in (rec.get("sources") or {}).items() if k in _USAGE_KEYS}
        usage["unavailable"] = {k: v for k, v in (rec.get("unavailable") or {}).items() if k in _USAGE_KEYS}
        usage["record"] = rec
        return usage

    def _wait(self, timeout):
        if self._record is not None:
            return self._record
        if self._future is not None:
            try:
                self._record = self._future.result(timeout)
            except RejectedError as e:
                self._record = e.record
        elif self._watch is not None:
            try:
                out, err = self._watch.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise
            code = self._watch.returncode
            if code < 0:
                raise CgmonError("cgmon watch was killed by signal %d before it could report" % -code,
                                 err.decode(errors="replace"))
            if code not in (0, 130, 143):
                raise CgmonError("cgmon watch exited with status %d" % code, err.decode(errors="replace"))
            self._record = json.loads(out)
        else:
            raise RuntimeError("start_monitoring was not called")
        return self._record


class MetricsCollector:
    """MetricsCollector aggregates execution records as the original
    module's did. record_execution takes cgmon's records (from run,
    end_execution, or result lines read elsewhere) as well as the
    original's dicts (language, status, execution_time). An execution
    whose time cgmon could not measure (it never started) counts in the
    totals and by status, never in a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self.metrics = []

    def record_execution(self, execution_result):
        """record_execution records one execution."""
        r = execution_result
        if r.get("status") == STATUS_REJECTED:
            raise ValueError("a rejected line is not an execution: %s" % r.get("error"))
        metric = {
            "timestamp": r.get("ended_at", r.get("timestamp")),
            "language": r.get("language") or "unknown",
            "status": r.get("status"),
            "execution_time": _execution_time(r),
            "exit_code": r.get("exit_code", -1),
            "cpu_seconds": r.get("cpu_total_seconds"),
            "memory_peak_mb": r.get("memory_peak_mb"),
            "resource_usage": r.get("resource_usage", {}),
        }
        with self._lock:
            self.metrics.append(metric)

    @staticmethod
    def _stats(ms):
        times = [m["execution_time"] for m in ms if m["execution_time"] is not None]
        ok = sum(1 for m in ms if m["status"] == "success")
        total = sum(times)
        return ok, times, total

    def get_language_stats(self):
        """get_language_stats returns, per language: count, success_count,
        error_count, total_execution_time and average_execution_time
        (seconds, over the executions whose time was measured),
        total_cpu_seconds and max_memory_peak_mb (None when none was
        measured)."""
        with self._lock:
            by = collections.defaultdict(list)
            for m in self.metrics:
                by[m["language"]].append(m)
        out = {}
        for lang, ms in by.items():
            ok, times, total = self._stats(ms)
            cpu = [m["cpu_seconds"] for m in ms if m["cpu_seconds"] is not None]
            mem = [m["memory_peak_mb"] for m in ms if m["memory_peak_mb"] is not None]
            out[lang] = {
                "count": len(ms),
                "success_count": ok,
                "error_count": len(ms) - ok,
                "total_execution_time": total,
                "average_execution_time": total / len(times) if times else None,
                "total_cpu_seconds": sum(cpu) if cpu else None,
                "max_memory_peak_mb": max(mem) if mem else None,
            }
        return out

    def get_summary(self):
        """get_summary returns total_executions, success_count,
        error_count, success_rate (percent, 2 decimals),
        average_execution_time and total_execution_time (seconds, 3
        decimals)."""
        with self._lock:
            ms = list(self.metrics)
        if not ms:
            return {"total_executions": 0, "success_count": 0, "error_count": 0, "success_rate": 0,
                    "average_execution_time": None, "total_execution_time": 0}
        ok, times, total = self._stats(ms)
        return {
            "total_executions": len(ms),
            "success_count": ok,
            "error_count": len(ms) - ok,
            "success_rate": round(ok / len(ms) * 100, 2),
            "average_execution_time": round(total / len(times), 3) if times else None,
            "total_execution_time": round(total, 3),
        }

    def clear(self):
        """clear forgets every recorded execution."""
        with self._lock:
            self.metrics.clear()
