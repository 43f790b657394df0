"""Reading settings from the environment: each value checked, one problem line per variable
(naming it, never echoing its value, since some are secrets)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

from flowbuilder_adapters.secrets.keyring import Keyring, KeyringError

MIN_HMAC_KEY_BYTES = 32
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
# Secrets Manager name characters (the store checks them again); at most 256, which is also
# the longest tag value, since the prefix is the deployment tag's value too.
_SECRETS_PREFIX = re.compile(r"[A-Za-z0-9/_+=.@-]{1,256}")
# What tells a production process from embedded mode: embedded mode refuses to start while any
# of these is set, so a production environment cannot end up behind the local token issuer.
_PRODUCTION_SETTINGS = (
    "CLERK_FRONTEND_URL",
    "CLERK_JWKS_URL",
    "CLERK_SECRET_KEY",
    "CLERK_AUTHORIZED_PARTIES",
    "CLERK_AUDIENCE",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSL_MODE",
    "WORKFLOW_QUEUE_URL",
    "SQS_ENDPOINT_URL",
)


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's
    loopback; `localhost` is taken at its word, any other name is not loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


class EnvironmentReader:
    """Reads settings from the environment, one checked value at a time, collecting a one-line
    problem per variable (the first found) instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []
        self.invalid: set[str] = set()

    def _fail(self, name: str, message: str) -> None:
        # One line per variable: the first problem found with it is the one reported.
        if name not in self.invalid:
            self.invalid.add(name)
            self.problems.append(f"{name}: {message}")

    refuse = _fail

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self._fail(name, "must be an http or https URL")
            return None
        return value

    def clerk_url(self, name: str) -> str | None:
        """A URL that tokens or their keys are trusted from: https, or http on loopback only
        (a local test server), since keys fetched in the clear could be anyone's."""
        value = self.url(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
            self._fail(name, "must be an https URL (http only on a loopback host)")
            return None
        return value

    def secrets_prefix(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        # Without the slash, `flowbuilder/prod` would also be the start of every name under
        # `flowbuilder/prod-old/`.
        prefix = value if value.endswith("/") else value + "/"
        if not _SECRETS_PREFIX.fullmatch(prefix):
            self._fail(name, "must be 1 to 256 of A-Z a-z 0-9 / _ + = . @ -")
            return None
        return prefix

    def refuse_production_settings(self) -> None:
        """Embedded mode with a production setting present is a production environment about
        to accept the local issuer's tokens: each such setting is a problem of its own."""
        for name in _PRODUCTION_SETTINGS:
            if self.text(name) is not None:
                self._fail(name, "is a production setting; embedded mode refuses to start with it")
        database_url = self.text("DATABASE_URL")
        if database_url is not None and database_url.startswith("postgres"):
            self._fail("DATABASE_URL", "names Postgres; embedded mode keeps to SQLite")

    def keyring(self, name: str) -> Keyring | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return Keyring.parse(value)
        except KeyringError as exc:  # its message never holds key material
            self._fail(name, str(exc))
            return None

    def key_bytes(self, name: str) -> bytes | None:
        """A secret key given as base64 of at least MIN_HMAC_KEY_BYTES bytes."""
        value = self.text(name)
        if value is None:
            return None
        try:
            key = base64.b64decode(value, validate=True)
        except binascii.Error:
            key = b""
        if len(key) < MIN_HMAC_KEY_BYTES:
            self._fail(name, f"must be base64 of at least {MIN_HMAC_KEY_BYTES} bytes")
            return None
        return key

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._env.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._fail(name, "must be true or false")
        return default

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in allowed:
            self._fail(name, "must be one of " + ", ".join(allowed))
            return default
        return value

    def port(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            self._fail(name, "must be a port number (1-65535)")
            return default
        return int(value)

    def positive_int(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < 1:
            self._fail(name, "must be a positive integer")
            return default
        return int(value)

    def positive_number(self, name: str, default: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = 0.0
        if not 0 < number < float("inf"):
            self._fail(name, "must be a positive number")
            return default
        return number

    def strict_comma_set(self, name: str) -> frozenset[str] | None:
        """A comma-separated allowlist: None when the variable is absent; present but naming
        nothing (empty, blanks, commas) is a problem, never "no check", since a template that
        rendered to nothing must not switch the check off."""
        value = self._env.get(name)
        if value is None:
            return None
        items = frozenset(item.strip() for item in value.split(",") if item.strip())
        if not items:
            self._fail(name, "is set but names nothing; unset it, or list at least one value")
            return None
        return items

    def database_url(self, *, default_sqlite: Path | None) -> str:
        explicit = self.text("DATABASE_URL")
        if explicit is not None:
            return self._check_database_url(explicit)
        if default_sqlite is not None:
            return f"sqlite+aiosqlite:///{default_sqlite}"
        host = self.text("DB_HOST") or "localhost"
        port = self.text("DB_PORT") or "5433"
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            self._fail("DB_PORT", "must be a port number (1-65535)")
        name = self.text("DB_NAME") or "flow-builder"
        user = self._env.get("DB_USER", "root")
        password = self._env.get("DB_PASSWORD", "rootpassword")
        ssl_mode = (self.text("DB_SSL_MODE") or "require").lower()
        if ssl_mode not in _SSL_MODES:
            self._fail("DB_SSL_MODE", "must be one of " + ", ".join(_SSL_MODES))
        credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        return (
            f"postgresql+asyncpg://{credentials}@{host}:{port}/{quote(name, safe='')}"
            f"?ssl={ssl_mode}"
        )

    def _check_database_url(self, url: str) -> str:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme in ("postgres", "postgresql"):
            return "postgresql+asyncpg://" + url.split("://", 1)[1]
        if scheme in ("postgresql+asyncpg", "sqlite+aiosqlite"):
            return url
        self._fail(
            "DATABASE_URL",
            "must start with postgresql+asyncpg:// (or postgresql://) or sqlite+aiosqlite://",
        )
        return url
