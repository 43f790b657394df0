"""What a library user may import: `flowbuilder_core.__all__`, every name of it documented,
and nothing beyond the standard library behind it."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import typing
from types import ModuleType

import flowbuilder_core
from flowbuilder_core import FailUndeliveredExecutions, UseCases
from flowbuilder_core.credentials import use_cases as credential_use_cases
from flowbuilder_core.executions import use_cases as execution_use_cases
from flowbuilder_core.triggers import schedules as schedule_use_cases
from flowbuilder_core.workflows import activation as workflow_activation
from flowbuilder_core.workflows import use_cases as workflow_use_cases

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
    # zoneinfo loads sysconfig, whose platform data module is the standard library's too
    # though sys.stdlib_module_names does not list it.
    platform_data = {name for name in loaded if name.startswith("_sysconfigdata_")}
    third_party = loaded - set(sys.stdlib_module_names) - {"flowbuilder_core"} - platform_data
    assert third_party == set()
    assert "flowbuilder_core" in loaded


def use_case_classes() -> set[type]:
    """The public classes with an `async __call__` that the core's use-case modules define."""
    found = set()
    for module in (
        workflow_use_cases,
        workflow_activation,
        credential_use_cases,
        execution_use_cases,
        schedule_use_cases,
    ):
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and not name.startswith("_")
                and inspect.iscoroutinefunction(value.__call__)
            ):
                found.add(value)
    return found


def test_every_use_case_of_the_core_is_exported() -> None:
    exported = [getattr(flowbuilder_core, name) for name in flowbuilder_core.__all__]

    assert [kind for kind in use_case_classes() if kind not in exported] == []


def test_the_factory_builds_every_use_case_but_the_one_that_reads_a_queue() -> None:
    built = set(typing.get_type_hints(UseCases).values())

    assert built == use_case_classes() - {FailUndeliveredExecutions}
