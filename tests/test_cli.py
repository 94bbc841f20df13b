"""The public CLI: help with examples, one-line errors with exit code 2, override errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cogarch.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "cogarch.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("verb", ["ask", "train", "eval", "generate", "info", "memory", "plan"])
def test_help_has_examples(verb: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"cogarch {verb}" in out


def test_unknown_override_names_the_key(capsys) -> None:
    rc = main(["train", "toy", "--config", str(REPO / "configs/toy/tiny.yaml"), "bogus.key=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "bogus.key" in err and len(err.strip().splitlines()) == 1
    rc = main(["train", "toy", "--config", str(REPO / "configs/toy/tiny.yaml"), "optim.lr=fast"])
    assert rc == 2 and "optim.lr" in capsys.readouterr().err


def test_unknown_module_and_usage_errors(capsys) -> None:
    assert main(["train", "perceptoin", "--config", "x.yaml"]) == 2
    assert "did you mean 'perception'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["ask"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _mp4(path: Path, frames: int = 16) -> Path:
    from cogarch.video import write_mp4

    rng = np.random.default_rng(0)
    write_mp4(path, rng.integers(0, 255, (frames, 32, 32, 3), dtype=np.uint8), fps=8)
    return path


def test_bad_clips_give_exit_2_and_one_line(tmp_path: Path) -> None:
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    good = _mp4(tmp_path / "good.mp4")
    trunc = tmp_path / "truncated.mp4"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    for bad, needle in [(zero, "empty"), (text, "not a video"), (trunc, "truncated.mp4"), (tmp_path / "missing.mp4", "no such file")]:
        res = run_cli("ask", str(bad), "What moves?")
        assert_one_line_error(res, bad.name, needle)
    res = run_cli("ask", str(good), "   ")
    assert_one_line_error(res, "question is empty")
    res = run_cli("ask", str(good), "x" * 100_000)
    assert_one_line_error(res, "limit")


def test_generate_options(tmp_path, capsys) -> None:
    """KEY=VALUE generator options reach generate(); bad ones are one-line errors, nothing written."""
    import json

    out = tmp_path / "pq"
    assert main(["generate", "--suite", "physqa", "--n", "12", "--out", str(out), "--workers", "1", "train_per_template=2"]) == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["train_per_template"] == 2
    capsys.readouterr()
    for bad, needle in [("train_per_template", "KEY=VALUE"), ("colour=red", "unknown generate option 'colour'"),
                        ("size=big", "size: 'big' is not a valid int"), ("train_per_template=-1", "train_per_template")]:
        assert main(["generate", "--suite", "physqa", "--n", "4", "--out", str(tmp_path / "bad"), bad]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
