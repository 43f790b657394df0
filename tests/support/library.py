"""What the library tests share: the checkout's examples, docs and modules, and a fresh
virtual environment with the project installed as a library user installs it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
LIBRARY_DOC = ROOT / "docs" / "library.md"
PLAIN_INSTALL_HEADING = "### What the plain install brings"

FORBIDDEN_IN_PLAIN_INSTALL = frozenset(
    {
        "litestar",
        "granian",
        "uvloop",
        "dishka",
        "msgspec",
        "sqlalchemy",
        "alembic",
        "asyncpg",
        "aiosqlite",
        "aioboto3",
        "boto3",
        "botocore",
        "cryptography",
        "pyjwt",
    }
)
"""A web framework, a server, a database driver, an AWS SDK or a crypto library (issue #15)."""


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def doc_section(text: str, heading: str) -> str:
    """The lines after `heading` up to the next heading of any level (a `#` comment in a
    fenced code block is not one)."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    fenced = False
    for end in range(start, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and lines[end].startswith("#"):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def documented_plain_install() -> set[str]:
    """The packages docs/library.md says the plain install brings: the first column of the
    table under PLAIN_INSTALL_HEADING."""
    section = doc_section(LIBRARY_DOC.read_text(), PLAIN_INSTALL_HEADING)
    return {normalise(name) for name in re.findall(r"^\| `([\w.-]+)` \|", section, re.M)}


def readme_example() -> tuple[str, str]:
    """The README's "Using the core from Python" example: its Python block, and the plain
    block after it, what the example prints."""
    section = doc_section((ROOT / "README.md").read_text(), "## Using the core from Python")
    found = re.search(r"```python\n(.*?)```\n\n```\n(.*?)```", section, re.S)
    assert found is not None, "no ```python block and its output in the README's section"
    return found[1], found[2]


def source_modules() -> list[str]:
    """Every module of the three packages, by dotted name, from the source tree."""
    modules = []
    for path in sorted((ROOT / "src").glob("flowbuilder_*/**/*.py")):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


@dataclass(frozen=True)
class PlainInstall:
    """A virtual environment's interpreter, and pip's report of what it installed there."""

    python: Path
    report: dict[str, Any]
    site_packages: Path

    def run(self, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        """`python -I args`: isolated, so neither this checkout nor PYTHON* variables leak
        in, only what the install put in the environment."""
        return subprocess.run(
            [str(self.python), "-I", *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def installed(self) -> set[str]:
        """The normalised names of what pip installed, the project included."""
        return {normalise(item["metadata"]["name"]) for item in self.report["install"]}


def install_without_extras(root: Path) -> PlainInstall:
    """A new virtual environment under `root` with the project installed from a copy of its
    source: `pip install <copy>`, no extras, not editable, so the wheel is what gets tested
    and the build leaves nothing in the checkout. Uses pip's cache and configured indexes."""
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    report = root / "report.json"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--report", str(report), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return PlainInstall(python, json.loads(report.read_text()), Path(site))
