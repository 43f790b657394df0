"""Pytest fixtures for tests that talk to AWS services through the local moto server.

Import the fixture into the test module that needs it:

    from support.aws_fixtures import moto_endpoint  # noqa: F401
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.moto_server import shared_moto_server

__all__ = ["AWS_REGION", "moto_endpoint"]

AWS_REGION = "us-east-1"

# Dummy values only: the tests must never reach a real AWS account, whatever the developer's
# shell or ~/.aws holds.
_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": AWS_REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_REMOVED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of the session's moto server. While in use, the environment holds dummy AWS
    credentials and region, and `AWS_ENDPOINT_URL_SECRETS_MANAGER` points botocore at the
    server; the previous environment comes back at the end of the session."""
    url = shared_moto_server().url
    with pytest.MonkeyPatch.context() as patch:
        for name in _REMOVED_ENV:
            patch.delenv(name, raising=False)
        for name, value in _DUMMY_ENV.items():
            patch.setenv(name, value)
        patch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        yield url
