"""`cogarch language merge SRC OUT`: fold the LoRA adapter into the LM weights.

OUT is a plain transformers folder (AutoModelForCausalLM.from_pretrained(OUT) works with no PEFT)
that also carries projectors.safetensors + language_config.json ("merged": true), so
`LanguageModule.from_pretrained(OUT)` gives the same answers as SRC without the LoRA overhead.
"""

from __future__ import annotations

import json
import os

from safetensors.torch import save_file

from cogarch.config import to_dict
from cogarch.fsutil import atomic_dir
from cogarch.modules.language.model import CONFIG_FILE, FORMAT_VERSION, PROJECTORS_FILE, LanguageModule


def merge(src: str | os.PathLike, out: str | os.PathLike, base_lm: str | None = None) -> None:
    """Load SRC (adapter + projectors), merge_and_unload the LoRA, write OUT atomically."""
    module = LanguageModule.from_pretrained(src, base_lm=base_lm)
    lm = module.lm.merge_and_unload() if hasattr(module.lm, "merge_and_unload") else module.lm
    with atomic_dir(out) as tmp:
        lm.save_pretrained(str(tmp))
        module.tokenizer.save_pretrained(str(tmp))
        state = {k: v.detach().contiguous().cpu() for k, v in module.adapter.state_dict().items()}
        save_file(state, str(tmp / PROJECTORS_FILE))
        cfg = to_dict(module.config)
        cfg["base_lm"] = "."  # the LM is this folder
        meta = {"module": "language", "format_version": FORMAT_VERSION, "config": cfg, "merged": True,
                "merged_from": str(src), "token_norm": module.token_norm}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
