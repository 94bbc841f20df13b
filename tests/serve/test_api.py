"""API tests of `cogarch serve` against a real uvicorn server on loopback (fixtures in conftest.py):
the happy path answers exactly what `cogarch ask` answers, oversize uploads get 413 however they
are sent, bad clips and questions get 422 with one clear line, concurrent requests are each
answered correctly, and no upload outlives its request on disk."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image

Q1 = "How many pairs of objects collide?"
Q2 = "What shape is the purple object?"


def _post(url: str, clip: Path | None = None, questions=(), timeout=60, **fields) -> httpx.Response:
    files = {"clip": (clip.name, clip.read_bytes(), "video/mp4")} if clip is not None else None
    return httpx.post(url + "/v1/ask", files=files, data={"question": list(questions), **fields}, timeout=timeout)


def _same(got: dict, want: dict) -> None:
    assert got["question"] == want["question"]
    assert got["answer"] == want["answer"]  # the served answer IS the model's answer
    assert got["evidence"]["surprise"]["curve"] == want["evidence"]["surprise"]["curve"]
    assert got["evidence"]["forecast"] == want["evidence"]["forecast"]
    assert got["evidence"]["recall"] == want["evidence"]["recall"]


def test_health_info_and_openapi(server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    info = httpx.get(server.url + "/v1/info").json()
    assert info["model"] == "default_pack" and "language" in info["modules"]
    assert info["examples"] == ["side_exit.mp4", "table_collision.mp4"]
    assert info["limits"]["max_upload_bytes"] == 1 << 20 and info["limits"]["max_duration_s"] == 5.0
    spec = httpx.get(server.url + "/openapi.json").json()
    body = spec["paths"]["/v1/ask"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["clip"]["format"] == "binary" and body["properties"]["question"]["type"] == "array"
    assert {"413", "422"} <= set(spec["paths"]["/v1/ask"]["post"]["responses"])
    assert "answers" in spec["components"]["schemas"]["AskOut"]["properties"]
    # Loopback names only (DNS rebinding): a page served from elsewhere cannot reach the server.
    assert httpx.get(server.url + "/healthz", headers={"Host": "evil.example:8000"}).status_code == 400
    assert httpx.get(server.url + "/healthz", headers={"Host": "localhost:1"}).status_code == 200
    for cdn_page in ("/docs", "/redoc"):  # FastAPI's default docs pages load JS from a CDN
        assert httpx.get(server.url + cdn_page).status_code == 404


def test_ask_happy_path_matches_cogarch_ask(server, clips) -> None:
    clip = clips["table"]
    r = _post(server.url, clip, [Q1, Q2])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["clip"]["clip_id"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert out["clip"]["name"] == "table.mp4" and out["clip"]["frames"] == 16
    want = server.direct(clip, [Q1, Q2])
    assert [a["question"] for a in out["answers"]] == [Q1, Q2]
    for got, w in zip(out["answers"], want):
        _same(got, w)
        assert got["answer"].strip()
    # A follow-up question by clip_id: no upload, same encoding, same answer as asked directly.
    r2 = _post(server.url, None, [Q2], clip_id=out["clip"]["clip_id"])
    assert r2.status_code == 200 and r2.json()["answers"][0]["answer"] == want[1]["answer"]
    renamed = httpx.post(server.url + "/v1/ask", files={"clip": ("other name.mp4", clip.read_bytes())}, data={"question": Q2})
    assert renamed.json()["clip"]["name"] == "other name.mp4"  # cache hit, but this request's name
    assert renamed.json()["answers"][0]["answer"] == want[1]["answer"]
    png = httpx.get(server.url + out["clip"]["frames_url"])
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (16 * 64, 64)  # T frames side by side
    ex = _post(server.url, None, [Q1], example="table_collision.mp4")
    assert ex.status_code == 200 and ex.json()["clip"]["source"] == "example"
    assert server.leftovers() == []  # every upload folder removed


def test_oversize_upload_is_413_however_it_arrives(server) -> None:
    cap = 1 << 20
    # 1) Content-Length over the cap: refused before the body is read.
    r = httpx.post(server.url + "/v1/ask", files={"clip": ("big.mp4", b"\0" * (2 * cap))}, data={"question": "q"})
    assert r.status_code == 413 and "limit of 1 MiB" in r.json()["detail"]

    # 2) chunked (no Content-Length): caught by the byte count while streaming.
    def chunks():
        yield b'--XX\r\nContent-Disposition: form-data; name="clip"; filename="a.mp4"\r\n\r\n'
        for _ in range(4):
            yield b"\0" * (cap // 2)
        yield b"\r\n--XX--\r\n"

    r = httpx.post(server.url + "/v1/ask", content=chunks(), headers={"content-type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # 3) one byte over inside the form's slack: the file itself is counted.
    r = httpx.post(server.url + "/v1/ask", files={"clip": ("a.mp4", b"\0" * (cap + 1))}, data={"question": "q"})
    assert r.status_code == 413
    assert httpx.get(server.url + "/healthz").status_code == 200  # the server is fine afterwards
    assert server.leftovers() == []


def test_bad_clips_and_questions_are_422_with_one_line(server, clips, tmp_path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n" * 50)
    r = _post(server.url, notes, [Q1])
    detail = r.json()["detail"]
    assert r.status_code == 422 and detail.startswith("notes.mp4: not a video")
    assert str(server.tmp_root) not in detail and "\n" not in detail  # no server path leaks
    r = _post(server.url, clips["long"], [Q1])
    assert r.status_code == 422 and "6.0 s long; the limit is 5 s" in r.json()["detail"]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty file" in _post(server.url, empty, [Q1]).json()["detail"]
    for questions, needle in [([], "no question"), (["   "], "question is empty"), (["x" * 1001], "limit is 1000"),
                              ([Q1] * 5, "limit is 4")]:
        r = _post(server.url, clips["table"], questions)
        assert r.status_code == 422 and needle in r.json()["detail"], (questions[:1], r.text)
    # Nothing from a request is a path: traversal-looking ids and names are just unknown keys.
    assert _post(server.url, None, [Q1], clip_id="../../etc/passwd").status_code == 404
    assert _post(server.url, None, [Q1], example="../default_pack/pack.json").status_code == 404
    assert httpx.get(server.url + "/v1/clips/..%2F..%2Fetc/frames.png").status_code == 404
    r = httpx.post(server.url + "/v1/ask", json={"question": Q1})
    assert r.status_code == 415
    assert _post(server.url, clips["table"], [Q1], example="side_exit.mp4").status_code == 422  # two clips
    assert server.leftovers() == []


def test_two_concurrent_requests_are_both_answered_correctly(server, clips) -> None:
    jobs = {"table": Q1, "side": "Does any object fall?"}
    want = {k: server.direct(clips[k], [q])[0] for k, q in jobs.items()}
    got: dict[str, httpx.Response] = {}
    start = threading.Barrier(len(jobs))

    def one(key: str) -> None:
        start.wait()
        got[key] = _post(server.url, clips[key], [jobs[key]], timeout=120)

    threads = [threading.Thread(target=one, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in jobs:
        assert got[k].status_code == 200, got[k].text
        out = got[k].json()
        assert out["clip"]["name"] == f"{k}.mp4"  # no cross-talk between the two requests
        _same(out["answers"][0], want[k])
    assert server.service.worker.pending == 0


def test_serve_cli_bad_model_and_busy_port_are_one_line(capsys) -> None:
    import socket

    from cogarch.cli import main

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        assert main(["serve", "--port", str(busy.getsockname()[1])]) == 2
        err = capsys.readouterr().err
        assert "cannot listen on 127.0.0.1" in err and len(err.strip().splitlines()) == 1
    finally:
        busy.close()
    assert main(["serve", "--model", "/nonexistent", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", "eighty"])
    assert e.value.code == 2


def test_model_worker_is_one_thread_in_order_and_refuses_past_max_pending() -> None:
    import asyncio

    from cogarch.serve import Busy, ModelWorker

    w = ModelWorker(max_pending=2)
    gate, ran = threading.Event(), []

    def job(i: int) -> int:
        gate.wait(5)
        ran.append((i, threading.current_thread().name))
        return i

    async def scenario():
        a, b = asyncio.ensure_future(w.run(job, 1)), asyncio.ensure_future(w.run(job, 2))
        await asyncio.sleep(0)  # both are queued now
        with pytest.raises(Busy):  # the route turns this into 503
            await w.run(job, 3)
        gate.set()
        return await asyncio.gather(a, b)

    assert asyncio.run(scenario()) == [1, 2]
    assert [i for i, _ in ran] == [1, 2] and len({name for _, name in ran}) == 1 and w.pending == 0
    w.pool.shutdown()
