"""Benchmark scripts report bad input as one line and exit code 2 (evals/bench/__init__.py::cli)."""

import subprocess
import sys

import pytest

from cogarch.errors import UserError
from cogarch.evals.bench import cli


def test_cli_maps_user_error_to_exit_2(capsys):
    def bad() -> int:
        raise UserError("no such pack")

    with pytest.raises(SystemExit) as e:
        cli(bad)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: no such pack"
    with pytest.raises(SystemExit) as e:
        cli(lambda: 0)
    assert e.value.code == 0


@pytest.mark.parametrize("args", [["pack_table", "/nonexistent"], ["probe_compare", "--a", "/nonexistent", "--b", "/x"],
                                  ["planning_critic", "dynamics", "--pack", "/nonexistent", "--data", "/nonexistent"]])
def test_bench_script_bad_path(args):
    r = subprocess.run([sys.executable, "-m", f"cogarch.evals.bench.{args[0]}", *args[1:]], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
