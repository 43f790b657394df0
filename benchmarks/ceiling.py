"""The ceiling: a minimal raw ASGI app (no framework) over an asyncpg pool, doing what FlowBuilder
does for the benchmarked endpoints with the fewest statements FlowBuilder's design allows.

Served by granian exactly as `flowbuilder serve` is (ASGI, one worker, uvloop):

    CEILING_DSN=postgresql://... CEILING_JWKS_URL=http://.../.well-known/jwks.json \
    CEILING_ISSUER=http://... CEILING_AUTHORIZED_PARTIES=https://app... \
    granian --interface asgi --loop uvloop --workers 1 --port 8001 benchmarks.ceiling:app

Per request: RS256 JWT verification with pyjwt against the key fetched once at start-up (kid
lookup, `exp`/`nbf` with 5 s leeway, `iss`, `azp`), then

| endpoint | statements |
|---|---|
| GET /api/workflows | one SELECT (keyset page, limit + 1) |
| GET /api/workflows/{id} | one SELECT |
| POST /api/workflows | one transaction: write-rate bucket UPSERT, quota count UPSERT (held + 1 |
| | unless at the quota: the check and the count in one), INSERT workflow, INSERT version, |
| | INSERT tags |
| PUT /api/workflows/{id} | one transaction: write-rate bucket UPSERT, UPDATE ... RETURNING, |
| | INSERT version, DELETE + INSERT tags, DELETE credential uses, DELETE versions past the |
| | newest VERSIONS_KEPT_PER_WORKFLOW that no execution ran |
| POST /api/workflows/{id}/execute | one transaction: SELECT workflow, INSERT execution, INSERT |
| | outbox, rate-limit bucket UPSERT (one statement) |
| GET /api/executions | one SELECT (keyset page, limit + 1) |
| GET /api/executions/{id} | one SELECT (steps aggregated in a subquery) |

Bodies are decoded and encoded with msgspec. Anything else answers a 404 problem document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1024 * 1024
POOL_SIZE = 10
TRIGGERS = frozenset({"trigger.manual"})
NODE_TYPES = frozenset(
    {"trigger.manual", "http.request", "logic.if", "data.transform", "data.set", "util.delay"}
)
EXECUTION_RATE_PER_SECOND = float(os.environ.get("EXECUTION_RATE_PER_SECOND", "20"))
EXECUTION_RATE_BURST = float(os.environ.get("EXECUTION_RATE_BURST", "100"))
WRITE_RATE_PER_SECOND = float(os.environ.get("WRITE_RATE_PER_SECOND", "10"))
WRITE_RATE_BURST = float(os.environ.get("WRITE_RATE_BURST", "100"))
MAX_WORKFLOWS_PER_USER = int(os.environ.get("MAX_WORKFLOWS_PER_USER", "1000"))
VERSIONS_KEPT_PER_WORKFLOW = int(os.environ.get("VERSIONS_KEPT_PER_WORKFLOW", "100"))
WRITES = "writes:"
"""FlowBuilder's key prefix for the write buckets (beside the execution buckets)."""

_encode = msgspec.json.Encoder().encode


class _State:
    pool: asyncpg.Pool | None = None
    keys: dict[str, Any] = {}  # noqa: RUF012 (module state, filled at start-up)
    issuer: str = ""
    parties: frozenset[str] = frozenset()


STATE = _State()


# ---------------------------------------------------------------------------------------------
# Input shapes
# ---------------------------------------------------------------------------------------------


class Node(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: str
    type: str
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    credential_id: str | None = None
    position: dict[str, float] | None = None


class Edge(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    source: str
    target: str
    source_output: str | None = None


class Definition(msgspec.Struct, forbid_unknown_fields=True):
    nodes: list[Node] = msgspec.field(default_factory=list)
    edges: list[Edge] = msgspec.field(default_factory=list)


class WorkflowIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    definition: Definition = msgspec.field(default_factory=Definition)
    # PUT may send back what GET returned; ignored.
    id: str | None = None
    version: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class ExecuteIn(msgspec.Struct, forbid_unknown_fields=True):
    input: dict[str, Any] = msgspec.field(default_factory=dict)


_decode_workflow = msgspec.json.Decoder(WorkflowIn).decode
_decode_execute = msgspec.json.Decoder(ExecuteIn).decode


class Problem(Exception):  # noqa: N818 (an HTTP answer, not an error condition)
    def __init__(self, status: int, title: str) -> None:
        super().__init__(title)
        self.status, self.title = status, title


def _check_workflow(body: WorkflowIn) -> dict[str, Any]:
    """The cheap part of FlowBuilder's save-time checks; returns the definition as JSON."""
    name = body.name.strip()
    if not 1 <= len(name) <= 200 or len(body.description) > 2000 or len(body.tags) > 20:
        raise Problem(422, "Invalid workflow")
    ids = {node.id for node in body.definition.nodes}
    if len(ids) != len(body.definition.nodes):
        raise Problem(422, "Duplicate node id")
    for node in body.definition.nodes:
        if node.type not in NODE_TYPES:
            raise Problem(422, "Unknown node type")
    for edge in body.definition.edges:
        if edge.source not in ids or edge.target not in ids or edge.source == edge.target:
            raise Problem(422, "Bad edge")
    body.name = name
    definition: dict[str, Any] = msgspec.to_builtins(body.definition)
    return definition


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


def _user_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            token = value.decode("latin-1")
            break
    else:
        raise Problem(401, "Unauthorized")
    if not token.startswith("Bearer "):
        raise Problem(401, "Unauthorized")
    token = token[7:]
    try:
        key = STATE.keys.get(str(jwt.get_unverified_header(token).get("kid")))
        if key is None:
            raise Problem(401, "Unauthorized")
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=STATE.issuer,
            leeway=5,
            options={"require": ["exp", "nbf", "sub", "iss"], "verify_aud": False},
        )
    except jwt.PyJWTError:
        raise Problem(401, "Unauthorized") from None
    if STATE.parties and claims.get("azp") not in STATE.parties:
        raise Problem(401, "Unauthorized")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise Problem(401, "Unauthorized")
    return sub


# ---------------------------------------------------------------------------------------------
# Cursors (same construction as FlowBuilder's: position + a scoped digest)
# ---------------------------------------------------------------------------------------------


def _cursor(created_at: datetime, item_id: uuid.UUID, scope: str) -> str:
    payload = json.dumps([created_at.isoformat(), str(item_id)], separators=(",", ":")).encode()
    digest = hmac.new(b"ceiling.cursor", scope.encode() + b"\x00" + payload, hashlib.sha256)
    return base64.urlsafe_b64encode(payload + b"." + digest.digest()[:12]).decode().rstrip("=")


def _after(cursor: str | None, scope: str) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload, digest = raw[:-13], raw[-12:]
        expected = hmac.new(
            b"ceiling.cursor", scope.encode() + b"\x00" + payload, hashlib.sha256
        ).digest()[:12]
        if raw[-13:-12] != b"." or not hmac.compare_digest(digest, expected):
            raise ValueError("digest")
        created_at, item_id = json.loads(payload)
        return datetime.fromisoformat(created_at), uuid.UUID(item_id)
    except (ValueError, TypeError):
        raise Problem(400, "Bad cursor") from None


def _query(scope: Scope) -> tuple[int, str | None]:
    limit, cursor = 20, None
    for part in scope["query_string"].decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "limit":
            try:
                limit = int(value)
            except ValueError:
                raise Problem(422, "Bad limit") from None
            if not 1 <= limit <= 100:
                raise Problem(422, "Bad limit")
        elif name == "cursor":
            cursor = value
    return limit, cursor


# ---------------------------------------------------------------------------------------------
# Handlers: each returns (status, body, extra headers)
# ---------------------------------------------------------------------------------------------

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]

_LIST_WORKFLOWS = """
SELECT id, name, description, tags, version, created_at, updated_at FROM workflows
WHERE owner_id = $1 AND deleted_at IS NULL
ORDER BY created_at DESC, id DESC LIMIT $2"""
_LIST_WORKFLOWS_AFTER = """
SELECT id, name, description, tags, version, created_at, updated_at FROM workflows
WHERE owner_id = $1 AND deleted_at IS NULL
  AND created_at <= $3 AND (created_at < $3 OR (created_at = $3 AND id < $4))
ORDER BY created_at DESC, id DESC LIMIT $2"""
_GET_WORKFLOW = """
SELECT id, name, description, tags, version, created_at, updated_at, definition FROM workflows
WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"""
_INSERT_WORKFLOW = """
INSERT INTO workflows (id, owner_id, name, description, tags, definition, version,
                       created_at, updated_at, deleted_at)
VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, NULL)"""
_INSERT_VERSION = """
INSERT INTO workflow_versions (workflow_id, version, name, definition, created_at)
VALUES ($1, $2, $3, $4, $5)"""
_INSERT_TAGS = """
INSERT INTO workflow_tags (workflow_id, owner_id, tag, created_at)
SELECT $1, $2, tag, $4 FROM unnest($3::text[]) AS tag"""
_UPDATE_WORKFLOW = """
UPDATE workflows SET name = $3, description = $4, tags = $5, definition = $6,
                     version = version + 1, updated_at = $7
WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL
RETURNING version, created_at"""
_DELETE_TAGS = "DELETE FROM workflow_tags WHERE workflow_id = $1"
_DELETE_CREDENTIAL_USES = "DELETE FROM workflow_credentials WHERE workflow_id = $1"
_RUNNABLE_WORKFLOW = """
SELECT version, definition FROM workflows
WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL"""
_INSERT_EXECUTION = """
INSERT INTO executions (id, owner_id, workflow_id, workflow_version, status, trigger, input,
                        error, attempt, retry_of, created_at)
VALUES ($1, $2, $3, $4, 'queued', 'manual', $5, NULL, 1, NULL, $6)"""
_INSERT_OUTBOX = """
INSERT INTO outbox (id, message, created_at, available_at, attempts) VALUES ($1, $2, $3, $3, 0)"""
# The token bucket in one statement: a new user starts full (minus this token); otherwise the
# refill since the last take, capped at the burst, and the update only when a token is left.
_RATE_LIMIT_UPSERT = """
INSERT INTO rate_limit_buckets AS b (owner_id, tokens, updated_at)
VALUES ($1::text, $2::float8 - 1, $3::timestamptz)
ON CONFLICT (owner_id) DO UPDATE
SET tokens = LEAST($2::float8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM
                   ($3::timestamptz - b.updated_at))::float8) * $4::float8) - 1,
    updated_at = GREATEST($3::timestamptz, b.updated_at)
WHERE LEAST($2::float8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM
            ($3::timestamptz - b.updated_at))::float8) * $4::float8) >= 1
RETURNING tokens"""
# The quota check and the count in one statement: one more, unless the owner is at the quota.
_HOLD_ONE_MORE = """
INSERT INTO owner_holdings AS h (owner_id, kind, held) VALUES ($1, 'workflows', 1)
ON CONFLICT (owner_id, kind) DO UPDATE SET held = h.held + 1 WHERE h.held < $2
RETURNING held"""
_PRUNE_VERSIONS = """
DELETE FROM workflow_versions v WHERE v.workflow_id = $1 AND v.version <= $2
AND NOT EXISTS (SELECT 1 FROM executions e
                WHERE e.workflow_id = $1 AND e.workflow_version = v.version)"""
_LIST_EXECUTIONS = """
SELECT id, workflow_id, workflow_version, status, trigger, error, attempt, created_at,
       started_at, finished_at FROM executions WHERE owner_id = $1
ORDER BY created_at DESC, id DESC LIMIT $2"""
_LIST_EXECUTIONS_AFTER = """
SELECT id, workflow_id, workflow_version, status, trigger, error, attempt, created_at,
       started_at, finished_at FROM executions WHERE owner_id = $1
  AND created_at <= $3 AND (created_at < $3 OR (created_at = $3 AND id < $4))
ORDER BY created_at DESC, id DESC LIMIT $2"""
_GET_EXECUTION = """
SELECT id, workflow_id, workflow_version, status, trigger, error, attempt, created_at,
       started_at, finished_at, input,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'node_id', s.node_id, 'status', s.status, 'started_at', s.started_at,
                 'finished_at', s.finished_at, 'output', s.output, 'error', s.error,
                 'truncated', s.truncated) ORDER BY s.position), '[]'::jsonb)
        FROM execution_steps s WHERE s.execution_id = executions.id) AS steps
FROM executions WHERE id = $1 AND owner_id = $2"""


def _pool() -> asyncpg.Pool:
    assert STATE.pool is not None
    return STATE.pool


def _workflow_out(row: asyncpg.Record, *, definition: bool) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "tags": row["tags"],
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if definition:
        out["definition"] = row["definition"]
    return out


def _execution_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "workflow_id": row["workflow_id"],
        "workflow_version": row["workflow_version"],
        "status": row["status"],
        "trigger": row["trigger"],
        "error": row["error"],
        "attempt": row["attempt"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


def _etag(version: int) -> tuple[bytes, bytes]:
    return (b"etag", b'"%d"' % version)


async def list_workflows(scope: Scope, user: str) -> Answer:
    limit, cursor = _query(scope)
    list_scope = f"workflows|{user}"
    after = _after(cursor, list_scope)
    if after is None:
        rows = await _pool().fetch(_LIST_WORKFLOWS, user, limit + 1)
    else:
        rows = await _pool().fetch(_LIST_WORKFLOWS_AFTER, user, limit + 1, *after)
    items = [_workflow_out(row, definition=False) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _cursor(last["created_at"], last["id"], list_scope)
    return 200, _encode({"items": items, "next_cursor": next_cursor}), []


async def get_workflow(user: str, workflow_id: uuid.UUID) -> Answer:
    row = await _pool().fetchrow(_GET_WORKFLOW, workflow_id, user)
    if row is None:
        raise Problem(404, "Not found")
    return 200, _encode(_workflow_out(row, definition=True)), [_etag(row["version"])]


async def create_workflow(user: str, body: bytes) -> Answer:
    data = _parse(_decode_workflow, body)
    definition = _check_workflow(data)
    workflow_id, now = uuid.uuid4(), datetime.now(UTC)
    tags = list(dict.fromkeys(data.tags))
    async with _pool().acquire() as connection, connection.transaction():
        await _take_write_token(connection, user, now)
        if await connection.fetchval(_HOLD_ONE_MORE, user, MAX_WORKFLOWS_PER_USER) is None:
            raise Problem(409, "Conflict")
        await connection.execute(
            _INSERT_WORKFLOW,
            workflow_id,
            user,
            data.name,
            data.description,
            data.tags,
            definition,
            now,
        )
        await connection.execute(_INSERT_VERSION, workflow_id, 1, data.name, definition, now)
        if tags:
            await connection.execute(_INSERT_TAGS, workflow_id, user, tags, now)
    out = {
        "id": workflow_id,
        "name": data.name,
        "description": data.description,
        "tags": data.tags,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "definition": definition,
    }
    headers = [_etag(1), (b"location", f"/api/workflows/{workflow_id}".encode())]
    return 201, _encode(out), headers


async def replace_workflow(user: str, workflow_id: uuid.UUID, body: bytes) -> Answer:
    data = _parse(_decode_workflow, body)
    definition = _check_workflow(data)
    now = datetime.now(UTC)
    tags = list(dict.fromkeys(data.tags))
    async with _pool().acquire() as connection, connection.transaction():
        await _take_write_token(connection, user, now)
        row = await connection.fetchrow(
            _UPDATE_WORKFLOW,
            workflow_id,
            user,
            data.name,
            data.description,
            data.tags,
            definition,
            now,
        )
        if row is None:
            raise Problem(404, "Not found")
        version = row["version"]
        await connection.execute(_INSERT_VERSION, workflow_id, version, data.name, definition, now)
        await connection.execute(_DELETE_TAGS, workflow_id)
        if tags:
            await connection.execute(_INSERT_TAGS, workflow_id, user, tags, row["created_at"])
        await connection.execute(_DELETE_CREDENTIAL_USES, workflow_id)
        if version > VERSIONS_KEPT_PER_WORKFLOW:
            await connection.execute(
                _PRUNE_VERSIONS, workflow_id, version - VERSIONS_KEPT_PER_WORKFLOW
            )
    out = {
        "id": workflow_id,
        "name": data.name,
        "description": data.description,
        "tags": data.tags,
        "version": version,
        "created_at": row["created_at"],
        "updated_at": now,
        "definition": definition,
    }
    return 200, _encode(out), [_etag(version)]


async def _take_write_token(connection: asyncpg.Connection, user: str, now: datetime) -> None:
    taken = await connection.fetchval(
        _RATE_LIMIT_UPSERT, WRITES + user, WRITE_RATE_BURST, now, WRITE_RATE_PER_SECOND
    )
    if taken is None:
        raise Problem(429, "Too Many Requests")


def _runnable(definition: dict[str, Any]) -> bool:
    nodes = definition.get("nodes", [])
    triggers = [node["id"] for node in nodes if node["type"] in TRIGGERS]
    if len(triggers) != 1:
        return False
    return not any(edge["target"] == triggers[0] for edge in definition.get("edges", []))


async def execute_workflow(user: str, workflow_id: uuid.UUID, body: bytes) -> Answer:
    data = _parse(_decode_execute, body) if body else ExecuteIn()
    execution_id, now = uuid.uuid4(), datetime.now(UTC)
    async with _pool().acquire() as connection, connection.transaction():
        row = await connection.fetchrow(_RUNNABLE_WORKFLOW, workflow_id, user)
        if row is None:
            raise Problem(404, "Not found")
        if not _runnable(row["definition"]):
            raise Problem(422, "Not runnable")
        version = row["version"]
        await connection.execute(
            _INSERT_EXECUTION, execution_id, user, workflow_id, version, data.input, now
        )
        message = {
            "type": "execution.requested",
            "version": 1,
            "execution_id": str(execution_id),
            "workflow_id": str(workflow_id),
            "workflow_version": version,
            "owner_id": user,
            "requested_at": now.isoformat().replace("+00:00", "Z"),
        }
        await connection.execute(_INSERT_OUTBOX, uuid.uuid4(), message, now)
        left = await connection.fetchval(
            _RATE_LIMIT_UPSERT, user, EXECUTION_RATE_BURST, now, EXECUTION_RATE_PER_SECOND
        )
        if left is None:
            raise Problem(429, "Too many executions")
    out = {
        "id": execution_id,
        "workflow_id": workflow_id,
        "workflow_version": version,
        "status": "queued",
        "trigger": "manual",
        "error": None,
        "attempt": 1,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "input": data.input,
        "steps": [],
    }
    return 202, _encode(out), [(b"location", f"/api/executions/{execution_id}".encode())]


async def list_executions(scope: Scope, user: str) -> Answer:
    limit, cursor = _query(scope)
    list_scope = f"executions|{user}"
    after = _after(cursor, list_scope)
    if after is None:
        rows = await _pool().fetch(_LIST_EXECUTIONS, user, limit + 1)
    else:
        rows = await _pool().fetch(_LIST_EXECUTIONS_AFTER, user, limit + 1, *after)
    items = [_execution_out(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _cursor(last["created_at"], last["id"], list_scope)
    return 200, _encode({"items": items, "next_cursor": next_cursor}), []


async def get_execution(user: str, execution_id: uuid.UUID) -> Answer:
    row = await _pool().fetchrow(_GET_EXECUTION, execution_id, user)
    if row is None:
        raise Problem(404, "Not found")
    out = _execution_out(row)
    out["input"] = row["input"]
    out["steps"] = row["steps"]
    return 200, _encode(out), []


def _parse(decode: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return decode(body)
    except msgspec.ValidationError:
        raise Problem(422, "Invalid body") from None
    except msgspec.DecodeError:
        raise Problem(400, "Malformed JSON") from None


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Problem(404, "Not found") from None


async def _route(scope: Scope, receive: Receive) -> Answer:
    method: str = scope["method"]
    parts = scope["path"].strip("/").split("/")
    if len(parts) < 2 or parts[0] != "api":
        raise Problem(404, "Not found")
    user = _user_of(scope)
    body = await _read_body(receive) if method in ("POST", "PUT") else b""
    resource, rest = parts[1], parts[2:]
    if resource == "workflows":
        if not rest:
            if method == "GET":
                return await list_workflows(scope, user)
            if method == "POST":
                return await create_workflow(user, body)
        elif len(rest) == 1:
            if method == "GET":
                return await get_workflow(user, _uuid(rest[0]))
            if method == "PUT":
                return await replace_workflow(user, _uuid(rest[0]), body)
        elif len(rest) == 2 and rest[1] == "execute" and method == "POST":
            return await execute_workflow(user, _uuid(rest[0]), body)
    elif resource == "executions" and method == "GET":
        if not rest:
            return await list_executions(scope, user)
        if len(rest) == 1:
            return await get_execution(user, _uuid(rest[0]))
    raise Problem(404, "Not found")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Problem(413, "Body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_JSON = (b"content-type", b"application/json")
_PROBLEM = (b"content-type", b"application/problem+json")


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        status, body, headers = await _route(scope, receive)
        headers.append(_JSON)
    except Problem as problem:
        status, headers = problem.status, [_PROBLEM]
        body = _encode({"type": "about:blank", "title": problem.title, "status": status})
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        status, headers = 503, [_PROBLEM]
        body = _encode({"type": "about:blank", "title": "Unavailable", "status": 503})
    await _send(send, status, body, headers)


# ---------------------------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------------------------


async def _init_connection(connection: asyncpg.Connection) -> None:
    for kind in ("jsonb", "json"):
        await connection.set_type_codec(
            kind,
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


def _fetch_keys(url: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError("CEILING_JWKS_URL must be an http(s) URL")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (scheme checked)
        document = json.load(response)
    jwks = jwt.PyJWKSet.from_dict(document)
    return {key.key_id: key.key for key in jwks.keys if key.key_id}


async def _startup() -> None:
    STATE.keys = _fetch_keys(os.environ["CEILING_JWKS_URL"])
    STATE.issuer = os.environ["CEILING_ISSUER"]
    parties = os.environ.get("CEILING_AUTHORIZED_PARTIES", "")
    STATE.parties = frozenset(p.strip() for p in parties.split(",") if p.strip())
    STATE.pool = await asyncpg.create_pool(
        os.environ["CEILING_DSN"], min_size=POOL_SIZE, max_size=POOL_SIZE, init=_init_connection
    )


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await _startup()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if STATE.pool is not None:
                    await STATE.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
