"""Fixtures for the `cogarch serve` tests: ONE real uvicorn server (session scope, free loopback
port, the shipped default pack loaded once) and physics-world clips rendered for the session.

The server runs in a thread of the test process so the tests can compare its answers with the
very model object it serves (`direct`), run on the server's own model thread so that nothing
drives the model from two threads at once.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

LIMITS = dict(max_upload_bytes=1 << 20, max_duration_s=5.0, max_questions=4, cache_clips=8, max_pending=8)


def render_clip(path: Path, seed: int, family: str) -> Path:
    """A 16-frame 64x64 physics-world clip (pymunk simulation + renderer), as the suites make them."""
    from cogarch.evals.world.render import Renderer
    from cogarch.evals.world.scenes import SceneConfig, sample_scene
    from cogarch.evals.world.sim import simulate
    from cogarch.video import write_mp4

    scene = sample_scene(np.random.default_rng(seed), SceneConfig(), family=family)
    traj = simulate(scene, num_frames=16)
    write_mp4(path, Renderer(scene, 64).frames(traj), scene.fps)
    return path


@dataclass
class Server:
    url: str
    service: object  # cogarch.serve.Service
    tmp_root: Path

    def direct(self, clip: Path, questions: list[str]) -> list[dict]:
        """What `cogarch ask --explain` computes for this clip, on the server's model thread."""
        model = self.service.model

        def run():
            obs = model.observe(clip)
            return [model.ask(obs, q, explain=True).to_json() for q in questions]

        return self.service.worker.pool.submit(run).result()

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmp_root))


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    from cogarch.video import write_mp4

    d = tmp_path_factory.mktemp("serve_clips")
    rng = np.random.default_rng(0)
    long = d / "long.mp4"  # 6 s at 8 fps: over the test server's 5 s limit
    write_mp4(long, rng.integers(0, 255, (48, 32, 32, 3), dtype=np.uint8), fps=8)
    return {"table": render_clip(d / "table.mp4", 11, "table"), "side": render_clip(d / "side.mp4", 12, "side"),
            "long": long}


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    import uvicorn

    from cogarch.api import load
    from cogarch.serve import ServeLimits, bind_socket, create_app

    tmp_root = tmp_path_factory.mktemp("serve_uploads")
    app = create_app(model=load(), limits=ServeLimits(**LIMITS), tmp_root=str(tmp_root))
    sock = bind_socket("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not th.is_alive():
            raise RuntimeError("test server did not come up")
        time.sleep(0.05)
    yield Server(url, app.state.service, tmp_root)
    srv.should_exit = True
    th.join(timeout=10)
    sock.close()
