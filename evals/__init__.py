"""Evaluation suites of cogarch, installed as `cogarch.evals` (see setup.py's package mapping).

`cogarch.evals.world` is the procedural physics world (physqa, voe, planning suites); other
subpackages hold the public-suite loaders and the eval runner.
"""
