"""What a library user may import: `flowbuilder_core.__all__`, every name of it documented,
and nothing beyond the standard library behind it."""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType

import flowbuilder_core

from support.library import LIBRARY_DOC


def test_every_name_in_all_is_exported_by_the_package() -> None:
    missing = [name for name in flowbuilder_core.__all__ if not hasattr(flowbuilder_core, name)]

    assert missing == []


def test_the_package_exports_no_public_name_beyond_all() -> None:
    public = {
        name
        for name, value in vars(flowbuilder_core).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }

    assert public == set(flowbuilder_core.__all__)


def test_all_names_each_export_once() -> None:
    assert len(flowbuilder_core.__all__) == len(set(flowbuilder_core.__all__))


def test_the_library_document_names_every_public_name() -> None:
    text = LIBRARY_DOC.read_text()

    undocumented = [name for name in flowbuilder_core.__all__ if f"`{name}`" not in text]

    assert undocumented == []


def test_importing_the_core_loads_the_standard_library_only() -> None:
    script = (
        "import json, sys; before = set(sys.modules); import flowbuilder_core; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )

    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    loaded = {name.partition(".")[0] for name in json.loads(ran.stdout)}
    third_party = loaded - set(sys.stdlib_module_names) - {"flowbuilder_core"}
    assert third_party == set()
    assert "flowbuilder_core" in loaded
