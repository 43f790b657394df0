"""Adapters: the technology behind the core's ports, and the composition root.

A plain `pip install flowbuilder` brings the in-memory adapters (`memory`), the in-process
queue (`queues.memory`) and the node runners (`nodes`); the rest needs an extra. Importing a
module whose extra is missing fails at once with one line naming it, instead of with the name
of whichever third-party module it imports first: `EXTRAS` says which module needs what, and
a finder installed here checks it before the module loads (docs/library.md, "Installs").

Public for library users: the names `memory` and `nodes` export, `nodes.http_request`'s
`HttpRequestRunner`, and `EXTRAS`. Every other module is internal to the service.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import MappingProxyType, ModuleType
from typing import Final, NamedTuple


class Needs(NamedTuple):
    """The extras that bring a module's third-party imports (any one of them will do)."""

    extras: tuple[str, ...]
    imports: tuple[str, ...]


_SQL = Needs(("postgres", "sqlite"), ("sqlalchemy", "alembic", "msgspec"))

EXTRAS: Final[Mapping[str, Needs]] = MappingProxyType(
    {
        "flowbuilder_adapters.sql": _SQL,
        "flowbuilder_adapters.relay": _SQL,
        "flowbuilder_adapters.secrets.aesgcm": Needs(
            ("postgres", "sqlite"), ("sqlalchemy", "msgspec", "cryptography")
        ),
        "flowbuilder_adapters.secrets.keyring": Needs(("postgres", "sqlite"), ("cryptography",)),
        "flowbuilder_adapters.secrets.aws": Needs(("aws",), ("aioboto3", "botocore")),
        "flowbuilder_adapters.queues.sqs": Needs(("aws",), ("aioboto3", "botocore")),
        "flowbuilder_adapters.clerk": Needs(("clerk",), ("jwt", "cryptography")),
        "flowbuilder_adapters.dev_issuer": Needs(("clerk",), ("jwt", "cryptography")),
        "flowbuilder_adapters.settings": Needs(("server",), ("cryptography",)),
        "flowbuilder_adapters.metrics": Needs(("server",), ("prometheus_client",)),
        "flowbuilder_adapters.wiring": Needs(
            ("server",),
            (
                "dishka",
                "sqlalchemy",
                "alembic",
                "msgspec",
                "cryptography",
                "aioboto3",
                "jwt",
                "prometheus_client",
            ),
        ),
    }
)
"""Which modules (packages cover their submodules) need which extra."""


def missing_extra(module: str, needs: Needs) -> str | None:
    """The one line to fail an import of `module` with, or None when its imports are there."""
    missing = [name for name in needs.imports if not _installed(name)]
    if not missing:
        return None
    extras = " or ".join(f"[{extra}]" for extra in needs.extras)
    return (
        f"{module} needs the {extras} extra (missing: {', '.join(missing)}): "
        f"pip install 'flowbuilder[{needs.extras[0]}]'"
    )


def require_extra(module: str, extras: Sequence[str], *imports: str) -> None:
    """Raise ImportError with one line naming the extra if any of `imports` is missing; for
    packages outside this one (`flowbuilder_http`), which the finder does not watch."""
    line = missing_extra(module, Needs(tuple(extras), imports))
    if line is not None:
        raise ImportError(line, name=module)


_present: set[str] = set()
"""Imports found once: they stay installed for the life of the process."""


def _installed(name: str) -> bool:
    if name in _present:
        return True
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: in sys.modules without a spec
        return False
    if found:
        _present.add(name)
    return found


class _ExtrasFinder(MetaPathFinder):
    """Finds nothing itself: it only refuses, with one line, a module of `EXTRAS` whose extra
    is missing, and leaves every other import to the finders after it."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if not fullname.startswith("flowbuilder_adapters."):
            return None
        for module, needs in EXTRAS.items():
            if fullname == module or fullname.startswith(module + "."):
                line = missing_extra(module, needs)
                if line is not None:
                    raise ImportError(line, name=fullname)
        return None


if not any(isinstance(finder, _ExtrasFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _ExtrasFinder())
