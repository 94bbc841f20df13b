"""The architecture: builds the configured modules, orders them by what they read and write, and
runs one pass over the latent bus.

Scheduling is a small DAG: module A runs before module B when B reads a kind that A writes.
Problems are build-time errors, not surprises mid-`ask`:
- a cycle (A reads what B writes and B reads what A writes) names the modules in the cycle;
- a kind read by an enabled module that no module in the architecture writes (and that is not an
  external input such as "frames") names the reader and the kind.
A module that is disabled in config is not built and not run; readers of its kind see no message
of that kind on the bus and must cope (DESIGN.md: "a module can be swapped, disabled or added").

Whole architectures save and load as one folder, a *pack*:

    <pack>/pack.json           {"format_version": 1, "modules": {"perception": "perception", ...}, ...}
    <pack>/<module>/...        each module's own save_pretrained folder
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cogarch.bus import LatentBus
from cogarch.errors import CheckpointError, UserError
from cogarch.fsutil import atomic_dir, safe_join

PACK_FORMAT_VERSION = 1
PACK_FILE = "pack.json"
# Kinds the caller puts on the bus before a pass (not produced by any module).
EXTERNAL_KINDS = frozenset({"frames", "goal", "question"})


class ArchitectureError(UserError):
    """A cycle, a missing producer or a malformed pack."""


@dataclass
class Timing:
    module: str
    ms: float


@dataclass
class Architecture:
    """An ordered set of modules sharing one bus.

    `modules` maps a name to a built module (anything with `reads`, `writes`, `step(bus, ...)`).
    `disabled` lists names that exist in the configuration but are switched off.
    """

    modules: dict[str, Any]
    disabled: tuple[str, ...] = ()
    external: frozenset[str] = EXTERNAL_KINDS
    order: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.order = schedule(
            {n: (tuple(m.reads), tuple(m.writes)) for n, m in self.modules.items()},
            external=self.external,
            disabled_writes=self._disabled_writes(),
        )

    def _disabled_writes(self) -> set[str]:
        from cogarch.registry import module_writes

        out: set[str] = set()
        for name in self.disabled:
            out |= set(module_writes(name))
        return out

    def run(self, bus: LatentBus, skip: Iterable[str] = (), **inputs: Any) -> list[Timing]:
        """One pass: call `step(bus)` of each enabled module in order (except those in `skip`).

        Extra keyword `inputs` (e.g. `frames=`) are passed to the modules whose `step` accepts them.
        Returns per-module wall times (for `--explain` and the latency benchmark).
        """
        timings = []
        skip = set(skip)
        for name in [n for n in self.order if n not in skip]:
            module = self.modules[name]
            params = inspect.signature(module.step).parameters
            kwargs = {k: v for k, v in inputs.items() if k in params}
            t0 = time.perf_counter()
            module.step(bus, **kwargs)
            timings.append(Timing(name, (time.perf_counter() - t0) * 1e3))
        return timings

    def __getitem__(self, name: str) -> Any:
        return self.modules[name]

    def get(self, name: str) -> Any | None:
        return self.modules.get(name)


def schedule(
    specs: dict[str, tuple[Iterable[str], Iterable[str]]],
    external: Iterable[str] = EXTERNAL_KINDS,
    disabled_writes: Iterable[str] = (),
) -> list[str]:
    """Topologically order modules given {name: (reads, writes)}; deterministic (Kahn, by name)."""
    external = set(external)
    optional = set(disabled_writes)
    writers: dict[str, list[str]] = {}
    for name, (_, writes) in specs.items():
        for kind in writes:
            writers.setdefault(kind, []).append(name)
    deps: dict[str, set[str]] = {name: set() for name in specs}
    for name, (reads, _) in specs.items():
        for kind in reads:
            producers = [w for w in writers.get(kind, []) if w != name]
            if not producers and kind not in external and kind not in optional and name not in writers.get(kind, []):
                raise ArchitectureError(f"module {name!r} reads {kind!r} but no module in the architecture writes it")
            deps[name] |= set(producers)
    order: list[str] = []
    ready = sorted(n for n, d in deps.items() if not d)
    remaining = {n: set(d) for n, d in deps.items() if d}
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in sorted(remaining):
            remaining[m].discard(n)
            if not remaining[m]:
                del remaining[m]
                ready.append(m)
        ready.sort()
    if remaining:
        raise ArchitectureError(f"module dependency cycle among {sorted(remaining)} (check their reads/writes)")
    return order


# ---------------------------------------------------------------------------------------------
# Packs: one folder per architecture.


def save_pack(arch: Architecture, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Write every enabled module's save_pretrained into `path/<name>/` plus pack.json, atomically."""
    with atomic_dir(path) as tmp:
        for name, module in arch.modules.items():
            module.save_pretrained(tmp / name)
        info = {
            "format_version": PACK_FORMAT_VERSION,
            "modules": {name: name for name in arch.modules},
            "disabled": list(arch.disabled),
            "order": arch.order,
        }
        info.update(meta or {})
        (tmp / PACK_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_pack_meta(path: str | os.PathLike) -> dict:
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{str(path)!r} is a file, not a model pack folder")
    if not folder.is_dir():
        raise CheckpointError(f"model pack not found: {str(path)!r} is not a folder")
    pj = folder / PACK_FILE
    if not pj.is_file():
        raise CheckpointError(f"{str(path)!r} is not a cogarch pack (no {PACK_FILE})")
    try:
        meta = json.loads(pj.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{pj}: corrupt JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("modules"), dict):
        raise CheckpointError(f"{pj}: missing 'modules' mapping")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > PACK_FORMAT_VERSION:
        raise CheckpointError(f"{pj}: written by a newer cogarch (pack format {version})")
    return meta


def _quiet_loading() -> contextlib.AbstractContextManager:
    """Silence library chatter while checkpoints load: transformers' "Loading weights" tqdm bar
    and deprecation notices meant for developers. The CLI promises users one line on error (and
    a clean answer on success); our own errors are exceptions, not warnings, so nothing is lost."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())  # the filters below are undone on exit
    warnings.filterwarnings("ignore", module=r"(transformers|peft|huggingface_hub|accelerate)(\.|$)")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        return stack
    if hf_logging.is_progress_bar_enabled():
        hf_logging.disable_progress_bar()
        stack.callback(hf_logging.enable_progress_bar)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    stack.callback(hf_logging.set_verbosity, verbosity)
    return stack


def check_files(folder: Path) -> None:
    """Cheap integrity pass over a saved module folder, before any weights load: every
    `*.safetensors` header parses and covers the file (safetensors checks this on open, reading
    only the header), every `*.json` is valid UTF-8 JSON. A truncated, zero-byte, corrupt or
    pickled file is named here in milliseconds instead of failing deep inside a library loader."""
    from safetensors import SafetensorError, safe_open

    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        if f.suffix == ".safetensors":
            try:
                with safe_open(str(f), framework="pt"):
                    pass
            except (SafetensorError, OSError, ValueError) as e:
                from cogarch.module import bad_safetensors

                raise bad_safetensors(f, e) from None
        elif f.suffix == ".json":
            try:
                json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise CheckpointError(f"{f}: corrupt JSON ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def _load_module(cls: type, name: str, folder: Path, pack: str | os.PathLike) -> Any:
    """`cls.from_pretrained(folder)`, with library errors about the files turned into one line."""
    from safetensors import SafetensorError

    try:
        return cls.from_pretrained(folder)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, SafetensorError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not isinstance(e, SafetensorError) and "state_dict" not in str(e):
            raise  # a RuntimeError that is not about the checkpoint is a bug: keep its traceback
        if isinstance(e, FileNotFoundError) or type(e).__name__ in ("HFValidationError", "EntryNotFoundError"):
            # A local file the loader needs is absent (the hub client then mistakes the folder
            # for a repo id): say so, and show what the folder does hold.
            held = sorted(p.name for p in folder.iterdir())
            detail = f"a file it needs is missing; {folder.name}/ holds {', '.join(held) or 'nothing'}"
        else:
            detail = f"{type(e).__name__}: {_first_line(e)}" if isinstance(e, KeyError) else _first_line(e)
        raise CheckpointError(f"pack {str(pack)!r}: cannot load module {name!r} from {folder} ({detail})") from None


def load_pack(path: str | os.PathLike, disable: Iterable[str] = ()) -> tuple[Architecture, dict]:
    """Load every module of a pack (minus `disable`) and schedule them.

    Everything cheap is checked before anything heavy loads: each module name is known, its
    folder is inside the pack and present, and its JSON/safetensors files parse (`check_files`).
    """
    from cogarch.module import CONFIG_NAME, read_module_meta
    from cogarch.registry import module_class

    meta = read_pack_meta(path)
    disable = set(disable)
    folders: dict[str, Path] = {}
    for name, sub in meta["modules"].items():
        if name in disable:
            continue
        module_class(name)  # an unknown or unbuilt module name fails before any file is read
        if not isinstance(sub, str) or not sub:
            raise CheckpointError(f"pack {str(path)!r}: module {name!r} has no folder name in {PACK_FILE}")
        folder = safe_join(path, sub)  # a pack.json cannot point outside its folder
        if not folder.is_dir():
            raise CheckpointError(f"pack {str(path)!r} lists module {name!r} but {sub}/ is missing")
        check_files(folder)
        if (folder / CONFIG_NAME).is_file():  # the common module format: right module, known version
            read_module_meta(folder, name)
        folders[name] = folder
    loaded: dict[str, Any] = {}
    # Cheapest first, so that a broken checkpoint is reported without waiting for the others: by
    # size on disk, and the language module last, being by far the slowest (transformers + PEFT).
    cost = {n: (n == "language", sum(f.stat().st_size for f in d.rglob("*") if f.is_file())) for n, d in folders.items()}
    with _quiet_loading():
        for name in sorted(folders, key=cost.__getitem__):
            loaded[name] = _load_module(module_class(name), name, folders[name], path)
    modules = {name: loaded[name] for name in folders}  # pack.json order, as before
    disabled = tuple(sorted(disable | set(meta.get("disabled", []))))
    return Architecture(modules, disabled=disabled), meta
