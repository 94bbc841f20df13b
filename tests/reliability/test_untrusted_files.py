"""Untrusted files (issue #9): nothing cogarch reads can run code or reach outside its folder.

1. A static scan (AST, not grep) of every shipped .py under cogarch/, modules/, evals/ for the
   ways a file turns into code: pickle & co., `torch.load` without `weights_only=True`,
   `np.load(allow_pickle=True)`, unsafe `yaml.load`, `eval`/`exec`, `trust_remote_code=True`.
   The scanner is itself tested on a snippet with every pattern, so the scan can fail.
2. Names read from packs / data manifests cannot escape their folder (`..`, absolute paths,
   symlinks out): the CLI exits 2 with one line and writes nothing.
3. A `.safetensors` file that is really a pickle with a code-running payload is refused with a
   one-line CheckpointError and the payload never runs.
"""

from __future__ import annotations

import ast
import json
import os
import pickle  # only to WRITE a malicious file below; the code under test must never load one
import shutil
from pathlib import Path

import pytest

from corpus_files import REPO, clone_pack  # type: ignore[import-not-found]

SHIPPED = ("cogarch", "modules", "evals")
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "<expr>")  # f().eval() is not eval()
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else k.value
    return None


def scan(source: str, filename: str) -> list[str]:
    """Every place in `source` that can deserialise code or execute text, as 'file:line: why'."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: imports {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_MODULES:
            out.append(f"{where}: imports from {node.module}")
        elif isinstance(node, ast.Call):
            fn = _dotted(node.func)
            leaf = fn.rsplit(".", 1)[-1]
            if fn in ("eval", "exec", "builtins.eval", "builtins.exec"):
                out.append(f"{where}: {fn}() runs text as code")
            elif fn.endswith("torch.load") or fn == "torch.load":
                if _kw(node, "weights_only") is not True:
                    out.append(f"{where}: torch.load without weights_only=True (unpickles)")
            elif fn in ("torch.jit.load", "pd.read_pickle", "pandas.read_pickle"):
                out.append(f"{where}: {fn} loads code/pickle")
            elif fn in ("np.load", "numpy.load") and _kw(node, "allow_pickle") not in (None, False):
                out.append(f"{where}: np.load with allow_pickle")
            elif fn in ("yaml.load", "yaml.load_all", "yaml.full_load", "yaml.unsafe_load", "yaml.unsafe_load_all"):
                loader = _kw(node, "Loader")
                if fn.startswith("yaml.unsafe") or fn == "yaml.full_load" or not (
                        isinstance(loader, ast.AST) and _dotted(loader).endswith(("SafeLoader", "CSafeLoader"))):
                    out.append(f"{where}: {fn} without a safe loader")
            if _kw(node, "trust_remote_code") not in (None, False):
                out.append(f"{where}: {leaf}(trust_remote_code=...) runs code from a model folder")
    return out


def _shipped_files() -> list[Path]:
    return sorted(p for d in SHIPPED for p in (REPO / d).rglob("*.py") if ".venv" not in p.parts)


def test_scanner_catches_every_pattern() -> None:
    bad = """
import pickle
from dill import loads
import torch, numpy as np, yaml
torch.load(f)
torch.load(f, weights_only=False)
np.load(f, allow_pickle=True)
yaml.load(text)
yaml.load(text, Loader=yaml.FullLoader)
yaml.unsafe_load(text)
eval(text)
exec(text)
AutoModel.from_pretrained(p, trust_remote_code=True)
torch.jit.load(f)
"""
    found = scan(bad, "bad.py")
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == list(range(2, 4)) + list(range(5, 15)), found
    good = """
import torch, numpy as np, yaml
torch.load(f, weights_only=True, map_location="cpu")
np.load(f, mmap_mode="r", allow_pickle=False)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
model.eval()
Model.from_pretrained(p).eval()
ast.literal_eval(text)
AutoModel.from_pretrained(p, trust_remote_code=False)
"""
    assert scan(good, "good.py") == []


def test_no_code_path_can_unpickle_or_exec() -> None:
    files = _shipped_files()
    assert len(files) > 50, f"only {len(files)} files found under {SHIPPED}: wrong root?"
    found = [v for f in files for v in scan(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert found == [], "unsafe loading:\n" + "\n".join(found)


# ----------------------------------------------------------------------------- behaviour


def _check_refused(res, needle: str, out: Path) -> None:
    lines = res.err_lines
    assert res.rc == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert needle in lines[0], lines[0]
    assert list(out.iterdir()) == [], f"wrote {list(out.iterdir())}"


@pytest.mark.parametrize("target", ["../../../../etc", "/etc", "symlink-out"])
def test_pack_module_folder_cannot_escape(target: str, cli, corpus, master_pack, tmp_path) -> None:
    pack = clone_pack(master_pack, tmp_path / "pack")
    (tmp_path / "out").mkdir()
    meta = json.loads((pack / "pack.json").read_text())
    if target == "symlink-out":  # a module folder that is a link to a folder outside the pack
        outside = tmp_path / "elsewhere"
        shutil.copytree(pack / "world_model", outside, copy_function=os.link)
        shutil.rmtree(pack / "world_model")
        (pack / "world_model").symlink_to(outside, target_is_directory=True)
    else:
        meta["modules"]["world_model"] = target
    (pack / "pack.json").unlink()
    (pack / "pack.json").write_text(json.dumps(meta))
    res = cli.run(["ask", str(corpus / "good.mp4"), "What moved?", "--model", str(pack),
                   "--memory", str(tmp_path / "out" / "mem")], cwd=tmp_path / "out", timeout=60)
    _check_refused(res, "escapes its folder", tmp_path / "out")
    res = cli.run(["info", str(pack)], cwd=tmp_path / "out", timeout=60)  # info must not walk /etc
    _check_refused(res, "escapes its folder", tmp_path / "out")


def test_dataset_record_cannot_escape(cli, tmp_path) -> None:
    # An MVPBench record (as downloaded) whose video_path climbs out of the data folder.
    data = tmp_path / "mvp"
    (data / "videos").mkdir(parents=True)
    rec = {"video_id": "clip_0", "candidates": ["yes", "no"], "answer": "yes",
           "question": "Does it fall?", "video_path": "../../../../../etc/passwd"}
    (data / "intuitive_physics.jsonl").write_text(json.dumps(rec) + "\n")
    (tmp_path / "out").mkdir()
    res = cli.run(["eval", "--suite", "mvp", "--data", str(data), "--model", "baseline:chance",
                   "--output", str(tmp_path / "out" / "eval")], cwd=tmp_path / "out", timeout=60)
    _check_refused(res, "escapes its folder", tmp_path / "out")


def test_generated_suite_row_cannot_escape(tmp_path) -> None:
    from cogarch.errors import UserError
    from cogarch.evals.runner import _video

    (tmp_path / "videos").mkdir()
    assert _video({"video": "videos/a.mp4"}, tmp_path) == str(tmp_path.resolve() / "videos/a.mp4")
    with pytest.raises(UserError, match="escapes its folder"):
        _video({"video": "../../secret.mp4"}, tmp_path)


class _Payload:
    """Unpickling this runs `touch <marker>`: proof that a loader executed the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_disguised_as_safetensors_is_refused(tmp_path) -> None:
    import torch

    from cogarch.architecture import check_files
    from cogarch.errors import CheckpointError
    from cogarch.module import load_weights

    marker = tmp_path / "PWNED"
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for proto in (2, pickle.HIGHEST_PROTOCOL):
        (folder / "model.safetensors").write_bytes(pickle.dumps({"w": _Payload(marker)}, protocol=proto))
        with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file but a Python pickle") as e:
            load_weights(torch.nn.Linear(2, 2), folder)
        assert "\n" not in str(e.value)
        with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file but a Python pickle"):
            check_files(folder)
    # torch's own zip format (what torch.save writes) under a .safetensors name: refused too
    torch.save({"w": torch.zeros(2)}, folder / "model.safetensors")
    for load in (lambda: load_weights(torch.nn.Linear(2, 2), folder), lambda: check_files(folder)):
        with pytest.raises(CheckpointError, match="not a safetensors file but a zip archive"):
            load()
    # random bytes: still the plain "corrupt" message
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors file"):
        check_files(folder)
    assert not marker.exists()
