"""Bounded load test of `cogarch serve` on loopback: N concurrent clients, a fixed number of
requests each, every request a full multipart upload + one question to `POST /v1/ask`.

    python -m cogarch.evals.bench.serve_load [--pack PACK] [--clients 4] [--requests 50]
        [--distinct 8] [--fresh 0.25] [--deadline 60]

The server is started as a real `cogarch serve` subprocess on a free 127.0.0.1 port (so its RSS
is its own), and stopped at the end. Clips are rendered by the physics world: `--distinct` clips
are shared by all clients (after the first request for each, the server answers from its encoded-
clip cache, the path of "several questions about one clip"), and a `--fresh` fraction of the
requests upload a never-seen clip (decode + perception + world model + memory every time).
Questions rotate over the physqa question types. Reported: requests, errors (any non-200, wrong
clip echoed back, or an empty answer), wall time, throughput, client-side latency p50 / p95 /
max, and the server's peak RSS (VmHWM from /proc, Linux). The whole run is capped at `--deadline`
seconds: requests not sent by then count as errors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cogarch.evals.bench import cli

QUESTIONS = [
    "How many pairs of objects collide?",
    "What shape is the purple object?",
    "Does any object fall?",
    "What color is the sphere?",
    "Will the red object hit the cube?",
]


def render_clips(folder: Path, n: int, seed: int) -> list[Path]:
    """n distinct 16-frame 64x64 physics-world clips (alternating table / side scenes)."""
    from cogarch.evals.world.render import Renderer
    from cogarch.evals.world.scenes import SceneConfig, sample_scene
    from cogarch.evals.world.sim import simulate
    from cogarch.video import write_mp4

    out = []
    for i in range(n):
        scene = sample_scene(np.random.default_rng(seed + i), SceneConfig(), family=("table", "side")[i % 2])
        path = folder / f"clip{seed + i:05d}.mp4"
        write_mp4(path, Renderer(scene, 64).frames(simulate(scene, num_frames=16)), scene.fps)
        out.append(path)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def start_server(pack: str | None, port: int, timeout: float = 120.0) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "cogarch.cli", "serve", "--port", str(port)] + (["--model", pack] if pack else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cogarch serve exited: {proc.stderr.read().strip()[-500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("cogarch serve did not come up")


def run_load(url: str, plan: list[list[tuple[Path, str]]], deadline_s: float) -> tuple[list[float], list[str], float]:
    """plan[c] = the (clip, question) requests of client c, sent one after another."""
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    t_end = time.monotonic() + deadline_s
    start = threading.Barrier(len(plan))

    def client(reqs: list[tuple[Path, str]]) -> None:
        with httpx.Client(base_url=url, timeout=max(1.0, deadline_s)) as c:
            start.wait()
            for clip, q in reqs:
                if time.monotonic() > t_end:
                    with lock:
                        errors.append("not sent before the deadline")
                    continue
                t0 = time.perf_counter()
                try:
                    r = c.post("/v1/ask", files={"clip": (clip.name, clip.read_bytes(), "video/mp4")}, data={"question": q})
                    ok = r.status_code == 200 and r.json()["clip"]["name"] == clip.name and r.json()["answers"][0]["answer"]
                    why = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    why = repr(e)
                dt = (time.perf_counter() - t0) * 1e3
                with lock:
                    lat.append(dt)
                    if why:
                        errors.append(why)

    threads = [threading.Thread(target=client, args=(p,)) for p in plan]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors, time.perf_counter() - t0


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", default=None, help="default: the shipped default pack")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=50, help="requests per client")
    ap.add_argument("--distinct", type=int, default=8, help="shared clips (encoded once, then cached)")
    ap.add_argument("--fresh", type=float, default=0.25, help="fraction of requests that upload a new clip")
    ap.add_argument("--deadline", type=float, default=60.0, help="hard cap on the load phase, seconds")
    ap.add_argument("--seed", type=int, default=1000)
    a = ap.parse_args(argv)
    total = a.clients * a.requests
    n_fresh = int(round(a.fresh * total))
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        t0 = time.perf_counter()
        shared = render_clips(Path(tmp), a.distinct, a.seed)
        fresh = render_clips(Path(tmp), n_fresh, a.seed + 100_000)
        render_s = time.perf_counter() - t0
        rng = np.random.default_rng(a.seed)
        reqs = [(shared[i % len(shared)], QUESTIONS[i % len(QUESTIONS)]) for i in range(total - n_fresh)]
        reqs += [(c, QUESTIONS[i % len(QUESTIONS)]) for i, c in enumerate(fresh)]
        order = rng.permutation(len(reqs))
        plan = [[reqs[j] for j in order[c::a.clients]] for c in range(a.clients)]
        port = _free_port()
        t0 = time.perf_counter()
        proc = start_server(a.pack, port)
        startup_s = time.perf_counter() - t0
        try:
            rss_idle = _proc_kib(proc.pid, "VmRSS") / 1024
            load_before = os.getloadavg()
            lat, errors, wall = run_load(f"http://127.0.0.1:{port}", plan, a.deadline)
            peak = _proc_kib(proc.pid, "VmHWM") / 1024
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = {
        "clients": a.clients, "requests": total, "fresh_clip_requests": n_fresh, "shared_clips": a.distinct,
        "errors": len(errors), "first_errors": errors[:3], "wall_s": round(wall, 2),
        "throughput_rps": round(len(lat) / wall, 2) if wall else None,
        "latency_ms": {"p50": round(_pct(lat, 0.5), 1), "p95": round(_pct(lat, 0.95), 1), "max": round(max(lat), 1),
                       "mean": round(statistics.fmean(lat), 1)} if lat else None,
        "server_rss_mib": {"loaded_idle": round(rss_idle, 1), "peak": round(peak, 1)},
        "server_startup_s": round(startup_s, 2), "render_clips_s": round(render_s, 2),
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
    }
    print(json.dumps(out, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    cli(main)
