"""The code stays in modules a reader can hold in mind: none under src/ passes 400 lines."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_LINES = 400


def test_no_module_under_src_passes_400_lines() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
    }

    assert len(sizes) > 100, "the source tree was found"
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
