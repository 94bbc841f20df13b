"""`make demo`: the main job on a fresh clone.

With the shipped default pack: ask questions about a bundled example clip, with evidence.
Without one (the pack is trained by `cogarch train pack`): generate a small physics-world suite
and show `cogarch info`, so a new user sees the data the model will be trained and judged on.
"""

from __future__ import annotations

import sys
import tempfile

from cogarch.cli import main


def run() -> int:
    from cogarch.assets import default_pack_path, example_clips

    pack, clips = default_pack_path(), example_clips()
    if pack is not None and clips:
        clip = str(next((c for c in clips if c.name == "table_collision.mp4"), clips[0]))
        questions = [
            "What shape is the purple object?",
            "How many pairs of objects collide?",
            "Does the red rubber sphere collide with the purple metal cylinder?",
        ]
        print(f"$ cogarch ask {clip} " + " ".join(f'-q "{q}"' for q in questions) + " --explain")
        print("(ground truth for this clip: cogarch/assets/examples/README.md)")
        args = ["ask", clip, questions[0]]
        for q in questions[1:]:
            args += ["-q", q]
        return main(args + ["--explain"])
    print("no default pack shipped yet: generating a small physics-world suite instead")
    with tempfile.TemporaryDirectory() as tmp:
        rc = main(["generate", "--suite", "physqa", "--n", "24", "--out", f"{tmp}/physqa"])
        if rc:
            return rc
    return main(["info"])


if __name__ == "__main__":
    sys.exit(run())
