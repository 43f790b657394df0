"""`make bench`: FlowBuilder's API under wrk, next to a raw ASGI + asyncpg ceiling app.

`python -m benchmarks` runs everything (see `benchmarks/run.py`); `benchmarks/ceiling.py` is the
ceiling app; `benchmarks/scale.py` and `benchmarks/engine.py`, when present, add their sections.

The test helpers under `tests/support` (a throwaway Postgres cluster, a loopback JWKS server,
token minting, a moto server) are reused: importing this package puts `tests/` on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
