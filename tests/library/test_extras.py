"""Each extra is enough for the adapters it names, with the other extras' packages missing.

Each case runs in a process of its own whose imports of the other extras' packages fail, as
they would in an environment where only this extra was installed (the fresh environment of
test_plain_install.py covers the install with no extra at all).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from support.library import ROOT

EXTRA_IMPORTS = {
    "postgres": {"sqlalchemy", "alembic", "msgspec", "cryptography", "asyncpg"},
    "sqlite": {"sqlalchemy", "alembic", "msgspec", "cryptography", "aiosqlite"},
    "aws": {"aioboto3", "aiobotocore", "boto3", "botocore"},
    "clerk": {"jwt", "cryptography"},
    "server": {"litestar", "dishka", "granian", "uvloop", "msgspec", "prometheus_client", "dotenv"},
}
"""The top-level modules each extra brings (pyproject.toml), by import name."""

EVERY_EXTRA = set().union(*EXTRA_IMPORTS.values())

BLOCK = """
import sys
from importlib.abc import MetaPathFinder

class Missing(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
"""


def run_with_only(extra: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    blocked = sorted(EVERY_EXTRA - EXTRA_IMPORTS[extra])
    source = f"BLOCKED = {blocked!r}\n{BLOCK}\n{textwrap.dedent(script)}"
    return subprocess.run(
        [sys.executable, "-c", source],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_sqlite_extra_migrates_and_reads_a_database_without_asyncpg(tmp_path: Path) -> None:
    script = """
        import asyncio, uuid
        from flowbuilder_adapters.sql import SqlUnitOfWork, create_engine
        from flowbuilder_adapters.sql.migrate import upgrade
        from flowbuilder_adapters.sql.workflows import SqlWorkflowRepository
        import flowbuilder_adapters.secrets.aesgcm

        async def main():
            url = "sqlite+aiosqlite:///data.db"
            await upgrade(url)
            engine = create_engine(url)
            async with engine.connect() as connection:
                found = await SqlWorkflowRepository(connection).get(uuid.uuid4())
            await engine.dispose()
            print("read", found)

        asyncio.run(main())
    """

    ran = run_with_only("sqlite", script, tmp_path)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "read None"


@pytest.mark.parametrize(
    ("extra", "modules"),
    [
        ("postgres", ["flowbuilder_adapters.sql", "flowbuilder_adapters.secrets.aesgcm"]),
        ("aws", ["flowbuilder_adapters.queues.sqs", "flowbuilder_adapters.secrets.aws"]),
        ("clerk", ["flowbuilder_adapters.clerk", "flowbuilder_adapters.dev_issuer"]),
    ],
)
def test_an_extra_is_enough_for_its_adapters(
    extra: str, modules: list[str], tmp_path: Path
) -> None:
    ran = run_with_only(extra, "".join(f"import {m}\n" for m in modules), tmp_path)

    assert ran.returncode == 0, ran.stderr


def test_an_adapter_of_another_extra_still_names_its_own(tmp_path: Path) -> None:
    ran = run_with_only("sqlite", "import flowbuilder_adapters.queues.sqs", tmp_path)

    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        "ImportError: flowbuilder_adapters.queues.sqs needs the [aws] extra "
        "(missing: aioboto3, botocore): pip install 'flowbuilder[aws]'"
    )


def extra_packages(extra: str) -> set[str]:
    """The distribution names an extra of pyproject.toml lists (extras of theirs dropped)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[\[<>=; ]", r, maxsplit=1)[0].lower()
        for r in project["optional-dependencies"][extra]
    }


def test_server_brings_every_adapter_extra_because_its_composition_root_imports_them_all() -> None:
    adapters = set().union(*(extra_packages(e) for e in ("postgres", "sqlite", "aws", "clerk")))

    assert adapters - extra_packages("server") == set()


def test_all_brings_every_extra_but_dev() -> None:
    every = set().union(
        *(extra_packages(e) for e in ("postgres", "sqlite", "aws", "clerk", "server"))
    )

    assert extra_packages("all") == every
