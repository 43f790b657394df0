"""The plain install, as a library user gets it: what it brings, what it runs, what it refuses.

One fresh virtual environment for the module (tests/library/conftest.py): `pip install` of the
project without extras, then every example and every module tried in it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.library import (
    EXAMPLES,
    FORBIDDEN_IN_PLAIN_INSTALL,
    PlainInstall,
    documented_plain_install,
    readme_example,
    source_modules,
)

EXPECTED_OUTPUT = {
    "validate_definition.py": [
        "valid: True, runnable: False",
        "/nodes/1/parameters/url: is required to run this node (blocks run)",
        '/edges/2/source_output: must be "true" or "false" on an edge leaving a logic.if node'
        " (blocks run)",
        "valid: False: /nodes/0/type is not a known node type",
    ],
    "run_in_memory.py": [
        "Review big orders v1: execution queued",
        "outcome: succeeded",
        "  order: succeeded {'status': 200, 'headers': {}, 'body': {'id': 42, 'total': 120.5}}",
        "  review: succeeded {'order': 42, 'reason': 'over 100'}",
        "  ship: skipped None",
    ],
    "custom_repository.py": [
        "versions: [(2, 'Nightly report'), (1, 'Nightly')]",
        "documents: ['version', 'version', 'workflow']",
    ],
}
"""Lines each example prints (among others): a run that ends well but wrongly fails too."""

ONE_LINE = re.compile(
    r"(flowbuilder_\w+(?:\.\w+)*) needs the \[(\w+)\](?: or \[\w+\])* extra "
    r"\(missing: [\w, ]+\): pip install 'flowbuilder\[(\w+)\]'"
)


def test_the_plain_install_brings_only_the_packages_the_docs_name(
    plain_install: PlainInstall,
) -> None:
    documented = documented_plain_install()

    brought = plain_install.installed() - {"flowbuilder"}

    assert brought <= documented, f"installed but not in docs/library.md: {brought - documented}"
    assert {"jmespath", "httpx", "httpcore"} <= brought


def test_the_docs_name_no_framework_server_driver_aws_sdk_or_crypto_library() -> None:
    assert not documented_plain_install() & FORBIDDEN_IN_PLAIN_INSTALL


def test_every_example_is_checked_for_what_it_prints() -> None:
    assert sorted(EXPECTED_OUTPUT) == sorted(path.name for path in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_each_example_runs_on_the_plain_install(
    plain_install: PlainInstall, example: Path, tmp_path: Path
) -> None:
    ran = plain_install.run(example, cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.splitlines()
    for line in EXPECTED_OUTPUT[example.name]:
        assert line in printed


def test_the_readme_example_runs_on_the_plain_install(
    plain_install: PlainInstall, tmp_path: Path
) -> None:
    code, output = readme_example()
    script = tmp_path / "readme_example.py"
    script.write_text(code)

    ran = plain_install.run(script, cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == output


def test_the_packages_ship_their_py_typed_marker(plain_install: PlainInstall) -> None:
    for package in ("flowbuilder_core", "flowbuilder_adapters", "flowbuilder_http"):
        assert (plain_install.site_packages / package / "py.typed").is_file()


IMPORT_EACH = """
import importlib, json, sys
outcome = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        outcome[name] = None
    except ImportError as error:
        outcome[name] = str(error)
print(json.dumps(outcome))
"""


def test_every_module_imports_or_fails_with_one_line_naming_its_extra(
    plain_install: PlainInstall, tmp_path: Path
) -> None:
    modules = source_modules()

    ran = plain_install.run("-c", IMPORT_EACH, *modules, cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    outcome: dict[str, str | None] = json.loads(ran.stdout)
    assert sorted(outcome) == sorted(modules)
    for module, error in outcome.items():
        if module.startswith(
            ("flowbuilder_core", "flowbuilder_adapters.memory", "flowbuilder_adapters.nodes")
        ):
            assert error is None, f"{module} must import on the plain install: {error}"
        elif error is not None:
            match = ONE_LINE.fullmatch(error)
            assert match is not None, f"{module}: {error}"
            assert match[2] == match[3]  # the extra to install is one the line names


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("flowbuilder_adapters.sql", "postgres"),
        ("flowbuilder_adapters.queues.sqs", "aws"),
        ("flowbuilder_adapters.secrets.aws", "aws"),
        ("flowbuilder_adapters.clerk", "clerk"),
        ("flowbuilder_adapters.wiring", "server"),
        ("flowbuilder_http.app", "server"),
    ],
)
def test_an_adapter_whose_extra_is_missing_names_the_extra_to_install(
    plain_install: PlainInstall, tmp_path: Path, module: str, extra: str
) -> None:
    ran = plain_install.run("-c", f"import {module}", cwd=tmp_path)

    assert ran.returncode == 1
    last_line = ran.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: ")
    assert f"pip install 'flowbuilder[{extra}]'" in last_line
