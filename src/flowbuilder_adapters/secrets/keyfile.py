"""A random key kept in a file of its own (mode 0600), for embedded mode's server keys."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from pathlib import Path


class KeyFileError(ValueError):
    """The key file is missing or does not hold a key. The message names the file only."""


def load_or_create_key(path: Path, size: int = 32) -> bytes:
    """The key kept in `path`; on first use, `size` random bytes written there (mode 0600).

    The file is created exclusively, so a second process starting at once keeps the first
    one's key instead of replacing it."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = base64.b64encode(os.urandom(size)).decode("ascii") + "\n"
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as out:
                out.write(text)
    return load_key(path)


def load_key(path: Path) -> bytes:
    """The key kept in `path` (base64 text); KeyFileError when there is none."""
    try:
        return base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except FileNotFoundError:
        raise KeyFileError(
            f"no key file at {path}; start the embedded server to create it"
        ) from None
    except (binascii.Error, UnicodeDecodeError):
        raise KeyFileError(f"the key file {path} does not hold a base64 key") from None
