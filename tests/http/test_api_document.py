"""docs/API.md is the contract: everything the code serves, reads or answers is in it.

Each list below is derived from the code (the routes of the built app, the variables the
settings loader reads, the error kinds and the codes raised in the source), never written out
here, so that adding a route, a setting or an error without documenting it fails a test.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from litestar.routes import HTTPRoute

import flowbuilder_adapters
import flowbuilder_core
import flowbuilder_http
from flowbuilder_adapters import settings as settings_module
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.settings import Mode, SettingsError, load_settings
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_core.shared.errors import FlowbuilderError
from flowbuilder_http import problems
from flowbuilder_http.problems import PROBLEM_TYPES, TYPE_PREFIX

from support.http_app import make_test_app

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
SOURCE_ROOT = Path(flowbuilder_core.__file__).resolve().parents[1]

_ENDPOINT = re.compile(r"`([A-Z]+) (/[^`\s]*)`")
_ENVIRONMENT_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_SETTING_ROW = re.compile(r"^\| `([A-Z0-9_]+)` \|")
_PROBLEM_ROW = re.compile(r"^\| `(" + re.escape(TYPE_PREFIX) + r"[a-z-]+)` \| ([^|]+) \|")
_CODE_ROW = re.compile(r"^\| `([a-z_]+)` \|")
_RUN_ERRORS = frozenset({"NodeFailedError", "ExecutionError"})


# --- the document ---------------------------------------------------------------------------


def doc_lines() -> list[str]:
    return API_DOC.read_text(encoding="utf-8").splitlines()


def section(heading: str) -> list[str]:
    """The lines under the first heading that contains `heading`, up to the next heading."""
    lines = doc_lines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading in line)
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        body.append(line)
    return body


def documented_endpoints() -> set[str]:
    """Every `METHOD /path` named in a heading: each endpoint has a section of its own."""
    return {
        f"{method} {path}"
        for line in doc_lines()
        if line.startswith("#")
        for method, path in _ENDPOINT.findall(line)
    }


def documented_problem_types() -> dict[str, str]:
    """The error table: type -> the status written in its row."""
    rows = (_PROBLEM_ROW.match(line) for line in section("Error types"))
    return {row.group(1): row.group(2).strip() for row in rows if row is not None}


# --- the code -------------------------------------------------------------------------------


def served_endpoints(issuer: DevTokenIssuer) -> set[str]:
    """`METHOD /path` of every handler the app registers, built as the other HTTP tests build
    it, but for the OPTIONS answers Litestar adds to every path by itself."""
    app = make_test_app(issuer, MemoryProvider(MemoryStore()))
    return {
        f"{method} {route.path_format}"
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if not handler.fn.__module__.startswith("litestar.routes")
        for method in handler.http_methods
    }


class RecordingEnvironment(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def environment_variables_the_settings_read() -> set[str]:
    """What `load_settings` looks up in every mode, and, for reads that depend on other values,
    every upper-case name the settings module passes to a call as its first argument."""
    environment = RecordingEnvironment()
    for mode in Mode:
        # An empty environment is incomplete in some modes; the reads happened all the same.
        with contextlib.suppress(SettingsError):
            load_settings(environment, mode)
    tree = ast.parse(inspect.getsource(settings_module))
    literal_names = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and _ENVIRONMENT_NAME.fullmatch(node.args[0].value)
    }
    return environment.read | literal_names


def every_error_kind() -> set[type[FlowbuilderError]]:
    """Every FlowbuilderError kind defined anywhere in the three packages (its modules
    imported first); the base class itself is abstract and left out."""
    for package in (flowbuilder_core, flowbuilder_adapters, flowbuilder_http):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    kinds: set[type[FlowbuilderError]] = set()
    pending = list(FlowbuilderError.__subclasses__())
    while pending:
        kind = pending.pop()
        kinds.add(kind)
        pending.extend(kind.__subclasses__())
    return kinds


def status_of_kind(kind: type[FlowbuilderError]) -> int:
    return next((PROBLEM_TYPES[k].status for k in kind.__mro__ if k in PROBLEM_TYPES), 500)


def problem_types_the_http_layer_writes() -> dict[str, int | None]:
    """The codes problems.py passes to `problem(status, code, ...)` itself, with the status
    when it is a literal too."""
    tree = ast.parse(inspect.getsource(problems))
    found: dict[str, int | None] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == problems.problem.__name__
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            continue
        status = node.args[0]
        literal = status.value if isinstance(status, ast.Constant) else None
        found[TYPE_PREFIX + node.args[1].value] = literal if isinstance(literal, int) else None
    return found


def run_error_codes_in_the_source() -> set[str]:
    """The literal codes of every `NodeFailedError(...)` and `ExecutionError(...)` in src/."""
    codes: set[str] = set()
    for path in SOURCE_ROOT.glob("flowbuilder_*/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in _RUN_ERRORS:
                continue
            arguments = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "code")]
            codes |= {
                a.value
                for a in arguments
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            }
    return codes


# --- the tests ------------------------------------------------------------------------------


def test_every_route_the_app_serves_is_documented(issuer: DevTokenIssuer) -> None:
    served = served_endpoints(issuer)

    undocumented = served - documented_endpoints()

    assert served, "no route found: the introspection is broken"
    assert not undocumented, f"add a `METHOD /path` heading to docs/API.md for {undocumented}"


def test_every_endpoint_the_document_names_is_a_route_the_app_serves(
    issuer: DevTokenIssuer,
) -> None:
    documented = documented_endpoints()

    not_served = documented - served_endpoints(issuer)

    assert documented, "no `METHOD /path` heading found in docs/API.md"
    assert not not_served, f"docs/API.md describes endpoints that do not exist: {not_served}"


def test_every_environment_variable_the_settings_read_is_documented() -> None:
    read = environment_variables_the_settings_read()
    rows = {m.group(1) for m in map(_SETTING_ROW.match, section("Settings")) if m is not None}

    undocumented = read - rows

    assert read, "no environment variable found: the introspection is broken"
    assert not undocumented, f"add rows to the settings table of docs/API.md for {undocumented}"


def test_every_problem_type_is_in_the_error_table_with_its_status() -> None:
    expected: dict[str, int | None] = {
        TYPE_PREFIX + kind.code: status_of_kind(kind)
        for kind in every_error_kind()
        if status_of_kind(kind) != 500  # answered as internal-error; see the next test
    }
    expected.update(problem_types_the_http_layer_writes())
    table = documented_problem_types()

    missing = sorted(set(expected) - set(table))
    wrong_status = {
        type_: (table[type_], status)
        for type_, status in expected.items()
        if type_ in table and status is not None and table[type_] != str(status)
    }
    unknown = sorted(set(table) - set(expected))

    assert not missing, f"add rows to the error table of docs/API.md for {missing}"
    assert not wrong_status, f"documented status differs from the code's: {wrong_status}"
    assert not unknown, f"the error table lists types the code never produces: {unknown}"


def test_error_kinds_without_a_status_are_named_in_the_document() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    internal = {kind.code for kind in every_error_kind() if status_of_kind(kind) == 500}

    unnamed = {code for code in internal if f"`{code}`" not in text}

    assert not unnamed, f"say in docs/API.md what becomes of the error kinds {unnamed}"


def test_every_step_and_execution_error_code_is_documented() -> None:
    raised = run_error_codes_in_the_source()
    rows = section("Step and execution error codes")
    table = {m.group(1) for m in map(_CODE_ROW.match, rows) if m is not None}

    undocumented = raised - table
    unknown = table - raised

    assert raised, "no error code found in the source: the introspection is broken"
    assert not undocumented, f"add rows to the error code table of docs/API.md for {undocumented}"
    assert not unknown, f"the error code table lists codes nothing raises: {unknown}"
