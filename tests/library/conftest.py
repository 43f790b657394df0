"""One fresh virtual environment with the plain install, shared by the library tests."""

from __future__ import annotations

import pytest

from support.library import PlainInstall, install_without_extras


@pytest.fixture(scope="session")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> PlainInstall:
    return install_without_extras(tmp_path_factory.mktemp("plain-install"))
