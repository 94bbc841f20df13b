"""Run the real `cogarch` CLI many times without paying the interpreter + torch start-up each time.

A *fork server*: one helper process imports the CLI and its heavy dependencies (torch, PyAV,
transformers, peft) once, never runs a tensor op (so no OpenMP thread pool exists to break a
fork), and then forks one child per request. Each child is a real process with the real CLI:

- it runs `cogarch.cli.main(argv)` exactly as the console script does (`sys.exit(main())`): an
  uncaught exception prints its traceback and exits 1, as the interpreter would;
- its stdout/stderr are the file descriptors 1 and 2 redirected to files, so C-level output (an
  FFmpeg log line, a tqdm bar from a library) is captured as the user would see it;
- it can drop privileges (setgid/setuid to `nobody`) to make an unreadable-file case real when
  the tests run as root;
- its exit code, peak RSS (wait4 rusage) and wall time come back to the test.

What it does NOT reproduce is interpreter start-up and import-time output; the corpus runs a
handful of cases through `python -m cogarch.cli` for that.

Protocol: one JSON request per line on stdin -> one JSON reply per line on the reply pipe.
Run as `python cli_runner.py` (the server); tests use `CliRunner` (the client).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PRELOAD = (
    "cogarch.cli", "cogarch.ask", "cogarch.api", "cogarch.video", "cogarch.train", "cogarch.info",
    "cogarch.config", "cogarch.evalglue", "cogarch.modules.memory.cli",
    "cogarch.modules.perception.model", "cogarch.modules.world_model.model",
    "cogarch.modules.memory.model", "cogarch.modules.language.model", "cogarch.modules.toy.train",
    "transformers", "peft",
)


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    maxrss_mb: float  # peak resident set of the child (includes pages shared with the server)
    wall_s: float

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


# ------------------------------------------------------------------------------------ server


def _child(req: dict, out_path: str, err_path: str, reply_fd: int) -> None:
    """In the forked child: set up the process like a fresh `cogarch ...` invocation, run it."""
    import traceback

    os.close(reply_fd)
    rc = 1
    try:
        os.setsid()  # the parent's timeout kills the whole group
        os.chdir(req["cwd"])
        stdin = os.open(req.get("stdin") or os.devnull, os.O_RDONLY)
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        for src, dst in ((stdin, 0), (out, 1), (err, 2)):
            os.dup2(src, dst)
            os.close(src)
        sys.stdin = open(0, closefd=False)
        if req.get("uid") is not None:  # after opening the output files, which root owns
            os.setgroups([])
            os.setgid(req["uid"])
            os.setuid(req["uid"])
        os.environ.update(req.get("env") or {})
        sys.argv = ["cogarch", *req["argv"]]
        from cogarch.cli import main

        try:
            code = main(req["argv"])
            rc = 0 if code is None else int(code)
        except SystemExit as e:  # the interpreter's rule for SystemExit codes
            if e.code is None or isinstance(e.code, int):
                rc = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                rc = 1
        except BaseException:
            traceback.print_exc()
            rc = 1
    except BaseException:  # a failure of the harness itself, still reported as a traceback
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc & 0xFF)


def serve() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nothing a child inherits may write into the reply pipe
    reply.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        out_path, err_path = req["stdout_file"], req["stderr_file"]
        sys.stdout.flush()
        sys.stderr.flush()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child(req, out_path, err_path, reply.fileno())
        deadline = t0 + float(req.get("timeout", 120))
        timed_out = False
        while True:
            wpid, status, usage = os.wait4(pid, os.WNOHANG)
            if wpid:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(pid, 9)
                wpid, status, usage = os.wait4(pid, 0)
                break
            time.sleep(0.01)
        rc = -9 if timed_out else (os.waitstatus_to_exitcode(status))
        reply.write(json.dumps({"rc": rc, "maxrss_kb": usage.ru_maxrss, "wall_s": time.perf_counter() - t0,
                                "timed_out": timed_out}) + "\n")


# ------------------------------------------------------------------------------------ client


class CliRunner:
    """Client of the fork server; one per test session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.n = 0
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)  # the user's default warning filters, not pytest's
        # One intra-op thread: the suite shares 2 cores with other tests, where OpenMP spin-waits
        # of a 2-thread pool cost more than they give (measured: 7.5 s vs 2-3 s per full ask).
        env.setdefault("OMP_NUM_THREADS", "1")
        self.log = open(workdir / "server.log", "w")
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env, cwd=str(workdir))
        hello = self.proc.stdout.readline()
        if not hello:
            raise RuntimeError(f"fork server failed to start: {(workdir / 'server.log').read_text()[-2000:]}")

    def run(self, argv: list[str], cwd: Path, uid: int | None = None, stdin: Path | None = None,
            timeout: float = 120.0, env: dict | None = None) -> Result:
        self.n += 1
        out, err = self.workdir / f"{self.n}.out", self.workdir / f"{self.n}.err"
        req = {"argv": argv, "cwd": str(cwd), "uid": uid, "stdin": str(stdin) if stdin else None,
               "timeout": timeout, "stdout_file": str(out), "stderr_file": str(err), "env": env}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died: {(self.workdir / 'server.log').read_text()[-2000:]}")
        rep = json.loads(line)
        return Result(rep["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"),
                      rep["maxrss_kb"] / 1024, rep["wall_s"])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


if __name__ == "__main__":
    serve()
