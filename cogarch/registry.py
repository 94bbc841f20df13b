"""Which module names `cogarch train NAME` knows, and where their training entry points live.

This is the one registry in the project: the CLI (and a pack YAML) must name a trainable thing by
string. Entries are import paths, imported lazily so that `cogarch --help` stays fast and a module
that is not built yet gives a clear "not built yet" error instead of an ImportError.

Each entry is a python module that provides `Config` (a dataclass schema) and either
`make_job(cfg) -> cogarch.train.TrainJob` (driven by the generic trainer) or, for pipelines,
`run(cfg, resume: bool) -> pathlib.Path`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cogarch.errors import NotBuiltError, UserError

TRAINABLE: dict[str, str] = {
    "toy": "cogarch.modules.toy.train",
    "perception": "cogarch.modules.perception.train",
    "probe": "cogarch.modules.perception.probe",
    "objects": "cogarch.modules.perception.objects_train",
    "world_model": "cogarch.modules.world_model.train",
    "critic": "cogarch.modules.cost.train",
    "language-pretrain": "cogarch.modules.language.pretrain",
    "language": "cogarch.modules.language.train",
    "language-binder": "cogarch.modules.language.binder_train",
    "pack": "cogarch.pack_train",
}


def trainable(name: str) -> ModuleType:
    """Import the training entry point of `name`, or raise a one-line UserError."""
    if name not in TRAINABLE:
        import difflib

        close = difflib.get_close_matches(name, list(TRAINABLE), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown module {name!r}{hint}; trainable: {', '.join(TRAINABLE)}")
    path = TRAINABLE[name]
    try:
        mod = importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name and (path.startswith(e.name) or e.name.startswith(path.rsplit(".", 1)[0])):
            raise NotBuiltError(f"module {name!r} is not built yet ({path} does not exist)") from None
        raise
    if not hasattr(mod, "Config") or not (hasattr(mod, "make_job") or hasattr(mod, "run")):
        raise NotBuiltError(f"module {name!r} has no training entry point yet ({path})")
    return mod


# Module classes by name, for packs (pack.json names its modules by these strings) and for the
# scheduler's knowledge of what a disabled module would have written.
MODULE_CLASSES: dict[str, str] = {
    "toy": "cogarch.modules.toy.model:ToyModule",
    "perception": "cogarch.modules.perception.model:PerceptionModule",
    "world_model": "cogarch.modules.world_model.model:WorldModel",
    "cost": "cogarch.modules.cost.model:CostModel",
    "memory": "cogarch.modules.memory.model:MemoryModule",
    "language": "cogarch.modules.language.model:LanguageModule",
}

# What each module writes, so that disabling one tells the scheduler its kinds are optional.
MODULE_WRITES: dict[str, tuple[str, ...]] = {
    "perception": ("percept", "objects"),
    "world_model": ("forecast", "surprise"),
    "cost": ("cost",),
    "memory": ("recall",),
    "language": (),
    "toy": ("cost",),
}


def module_writes(name: str) -> tuple[str, ...]:
    return MODULE_WRITES.get(name, ())


def module_class(name: str) -> type:
    """Import the module class registered under `name`."""
    if name not in MODULE_CLASSES:
        raise UserError(f"unknown module {name!r} in pack; known: {', '.join(MODULE_CLASSES)}")
    path, attr = MODULE_CLASSES[name].split(":")
    try:
        mod = importlib.import_module(path)
    except ModuleNotFoundError:
        raise NotBuiltError(f"module {name!r} is not built yet ({path} does not exist)") from None
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise NotBuiltError(f"module {name!r} has no class {attr} yet ({path})") from None
