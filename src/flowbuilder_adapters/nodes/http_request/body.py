"""A response body read within its size limit, decompressed as it arrives.

httpx decodes `Content-Encoding` a whole received chunk at a time, so a few kilobytes of
gzip can become a gigabyte before a caller sees the first decoded chunk. Here the raw bytes
are decompressed with a bound on every step (`max_length`), and reading stops as soon as the
decoded body passes the limit: memory stays within the limit whatever the compression ratio.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPTED_ENCODINGS = "gzip, deflate"
"""What the node asks servers for: the encodings it can decompress within a bound."""


class BodyTooLargeError(Exception):
    """The decoded body is over the limit."""


class UnsupportedEncodingError(Exception):
    """The server used a content encoding the node did not ask for."""


async def read_body(raw: AsyncIterator[bytes], content_encoding: str, limit: int) -> bytes:
    """The decoded body of at most `limit` bytes; BodyTooLargeError past it."""
    encoding = content_encoding.strip().lower()
    body = bytearray()
    if encoding in ("", "identity"):
        async for chunk in raw:
            body += chunk
            if len(body) > limit:
                raise BodyTooLargeError
        return bytes(body)
    if encoding not in _ENCODINGS:
        raise UnsupportedEncodingError(encoding)
    decoder = zlib.decompressobj(_ENCODINGS[encoding])
    async for chunk in raw:
        data = chunk
        while data:
            # Never more than one byte past the limit from any one step.
            body += decoder.decompress(data, limit + 1 - len(body))
            if len(body) > limit:
                raise BodyTooLargeError
            data = decoder.unconsumed_tail
    body += decoder.flush(limit + 1 - len(body))
    if len(body) > limit:
        raise BodyTooLargeError
    return bytes(body)
