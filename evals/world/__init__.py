"""The procedural 2-D physics world: simulate (pymunk), render (PIL/numpy), ask (templates).

Entry point for the CLI: `cogarch.evals.world.generate.generate(suite, n, out, seed, ...)`.
Vocabulary (colors, shapes, materials) lives only in `vocab.py`; see docs/vocabulary.md.
"""
