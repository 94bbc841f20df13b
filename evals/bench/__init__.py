"""Benchmarks of cogarch components (run as `python -m cogarch.evals.bench.<name>`).

Every script ends in `cli(main)`: a `UserError` (a missing pack, a bad split, an unknown encoder)
reaches the user as one line on stderr and exit code 2, as with the `cogarch` CLI.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn

from cogarch.errors import UserError


def cli(main: Callable[[], int | None]) -> NoReturn:
    """Run a benchmark's `main()`; exit with its return code, or 2 with one line for a UserError."""
    try:
        rc = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(rc or 0)
