"""The contract suites run against a third party's Storage named by one variable, as
docs/library.md §6 tells library users to run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.library import ROOT
from support.storage_hook import VARIABLE, custom_storage_factory

HERE = Path(__file__).parent


def run_contract_suites(storage: str, *paths: str) -> subprocess.CompletedProcess[str]:
    """`pytest <paths> -k custom` with the hook naming `storage`, in a process of its own."""
    env = {
        **os.environ,
        VARIABLE: storage,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "examples"), str(HERE)]),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "custom", *paths],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def counts(output: str) -> dict[str, int]:
    """pytest's summary line as {"passed": n, "failed": n, ...}."""
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", output)}


def test_the_example_repository_passes_every_suite_over_its_storage() -> None:
    ran = run_contract_suites("custom_repository:contract_storage", "tests/contract")

    assert ran.returncode == 0, ran.stdout[-3000:]
    summary = counts(ran.stdout.strip().splitlines()[-1])
    assert summary.get("failed", 0) == 0
    assert summary["passed"] >= 40  # the workflow, execution and rate-limiter suites


def test_a_repository_that_breaks_the_contract_fails_the_suite_by_name() -> None:
    ran = run_contract_suites(
        "careless_repository:contract_storage", "tests/contract/test_workflow_repository.py"
    )

    assert ran.returncode == 1
    assert (
        "FAILED tests/contract/test_workflow_repository.py::"
        "test_an_update_with_a_stale_expected_version_raises_concurrent_update_error[custom]"
    ) in ran.stdout


def test_the_hook_is_off_unless_the_variable_names_a_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)

    assert custom_storage_factory() is None


def test_a_hook_that_is_not_module_colon_function_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VARIABLE, "custom_repository.contract_storage")

    with pytest.raises(ValueError, match=VARIABLE):
        custom_storage_factory()
