"""A PostgreSQL server for the test session, and throwaway databases on it.

`postgres_server()` yields a SQLAlchemy URL (``postgresql+asyncpg://USER@127.0.0.1:PORT/postgres``)
of a server the tests may create databases on. It picks, in this order:

1. ``TEST_DATABASE_URL`` when set (any ``postgres://`` / ``postgresql[+driver]://`` URL; the
   driver is rewritten to asyncpg and the database in it is used to run CREATE DATABASE);
2. a testcontainers ``postgres:15`` container, only when a Docker socket exists (``DOCKER_HOST``
   or ``/var/run/docker.sock``; a probe against a missing socket would leak one);
3. a throwaway local cluster started from the PostgreSQL server binaries on this machine
   (``/usr/lib/postgresql/*/bin``, highest version first, else ``pg_config --bindir``), tuned
   for speed (no fsync, in /dev/shm when it is big enough) and removed on exit. A small
   watchdog process stops the cluster and deletes its directory even when the test process is
   killed.

`create_database()` / `drop_database()` make and remove uniquely named databases on that server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

__all__ = [
    "create_database",
    "drop_database",
    "local_cluster",
    "postgres_server",
]

ASYNCPG_DRIVER = "postgresql+asyncpg"
CONTAINER_IMAGE = "postgres:15"
SUPERUSER = "postgres"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


# ---------------------------------------------------------------------------------------------
# Choosing a server
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the SQLAlchemy (asyncpg) URL of a PostgreSQL server for the test session."""
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        yield _as_asyncpg_url(configured)
        return
    with contextlib.ExitStack() as stack:
        url = None
        if _docker_socket_exists():
            try:
                url = stack.enter_context(_container())
            except Exception as error:  # a stale socket, an engine that is down, no image ...
                print(f"PostgreSQL test container unavailable ({error!r}); trying a local cluster")
        if url is None:
            url = stack.enter_context(local_cluster())
        yield url


def _as_asyncpg_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgres", "postgresql"):
        raise ValueError(f"TEST_DATABASE_URL is not a PostgreSQL URL: {parsed!r}")
    return _render(parsed.set(drivername=ASYNCPG_DRIVER))


def _docker_socket_exists() -> bool:
    """True when a Docker engine may answer; checked on the path only, without connecting."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        if host.startswith("unix://"):
            return Path(host.removeprefix("unix://")).exists()
        return True  # tcp:// or ssh://: nothing local to check, let testcontainers try it
    return Path("/var/run/docker.sock").exists()


@contextlib.contextmanager
def _container() -> Iterator[str]:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14 keeps it at the old path
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        CONTAINER_IMAGE,
        username=SUPERUSER,
        password=SUPERUSER,
        dbname="postgres",
        driver="asyncpg",
    )
    with container:
        yield container.get_connection_url()


# ---------------------------------------------------------------------------------------------
# A throwaway local cluster
# ---------------------------------------------------------------------------------------------


def find_postgres_bindir() -> Path:
    """The directory holding `initdb` and `postgres`, highest installed version first."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise RuntimeError(
        "No PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin, "
        "`pg_config --bindir` and PATH). Install them (`apt-get install postgresql`), "
        "set TEST_DATABASE_URL, or provide a Docker engine."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cluster_parent_dir() -> str | None:
    """Where to put the cluster: RAM (/dev/shm) when roomy, else the usual temp dir.

    On disk, even with fsync off, CREATE DATABASE took ~200 ms here against ~8 ms on tmpfs, and
    every test creates one. Docker's default /dev/shm is 64 MB, too small, hence the size check.
    An explicit TMPDIR wins.
    """
    if os.environ.get("TMPDIR"):
        return None
    shm = Path("/dev/shm")  # noqa: S108 (mkdtemp below: private 0700 dir)
    with contextlib.suppress(OSError):
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 1 << 30:
            return str(shm)
    return None


def _run_as_user() -> str | None:
    """The OS user to run the server as when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("Running as root but there is no `postgres` (or `nobody`) user")


# The watchdog outlives us: it waits for EOF on stdin (our end of the pipe closes when this
# process exits for any reason, SIGKILL included), then stops the cluster and removes its
# directory. It is also the normal shutdown path, so a cluster is only ever stopped one way.
# Through the pipe it learns the pid of the process group the server was started in, for a
# SIGKILL when the server does not stop in time.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
root, data, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = [int(line) for line in sys.stdin.buffer.read().split()]

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

pidfile = os.path.join(data, "postmaster.pid")
try:
    with open(pidfile) as f:
        pid = int(f.readline())
except (OSError, ValueError):
    pid = 0
stopped = pid > 0
if pid > 0 and alive(pid):
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back open transactions, exit
    deadline = time.monotonic() + timeout
    # The server removes its pid file on the way out (a zombie would still look alive).
    while os.path.exists(pidfile) and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    stopped = not (os.path.exists(pidfile) and alive(pid))
if not stopped:  # no clean stop, or the server had not even written its pid file yet
    for pgid in groups[-1:]:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
shutil.rmtree(root, ignore_errors=True)
"""


@contextlib.contextmanager
def local_cluster(bindir: Path | None = None) -> Iterator[str]:
    """Start a fresh PostgreSQL cluster in a temp dir; yield its URL; stop and delete it."""
    bindir = bindir or find_postgres_bindir()
    user = _run_as_user()
    prefix = ["runuser", "-u", user, "--"] if user else []
    root = Path(tempfile.mkdtemp(prefix="flowbuilder-pg-", dir=_cluster_parent_dir()))
    data = root / "data"
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(root), str(data), str(STOP_TIMEOUT_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C meant for pytest must not reach it
    )
    servers: list[subprocess.Popen[bytes]] = []

    def stop() -> None:
        assert watchdog.stdin is not None
        if watchdog.stdin.closed:
            return
        watchdog.stdin.close()  # EOF: the watchdog stops the server and removes `root`
        try:
            watchdog.wait(timeout=STOP_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            watchdog.kill()
        for server in servers:  # reap runuser / postgres
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=2)

    atexit.register(stop)
    try:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        initdb = subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=root,
            capture_output=True,
            check=False,
        )
        if initdb.returncode != 0:
            output = (initdb.stdout + initdb.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{output}")
        port = _start_server(prefix, bindir, root, data, watchdog, servers)
        yield f"{ASYNCPG_DRIVER}://{SUPERUSER}@127.0.0.1:{port}/postgres"
    finally:
        stop()
        atexit.unregister(stop)
        shutil.rmtree(root, ignore_errors=True)


def _start_server(
    prefix: list[str],
    bindir: Path,
    root: Path,
    data: Path,
    watchdog: subprocess.Popen[bytes],
    servers: list[subprocess.Popen[bytes]],
) -> int:
    """Start `postgres` on a free port and wait until it accepts connections; return the port."""
    assert watchdog.stdin is not None
    log_path = root / "postgres.log"
    for _attempt in range(3):  # a "free" port can be taken before the server binds it
        port = _free_port()
        with log_path.open("ab") as log:
            server = subprocess.Popen(
                [
                    *prefix,
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={port}",
                    "-c",
                    f"unix_socket_directories={root}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, out of reach of Ctrl-C
            )
        servers.append(server)
        watchdog.stdin.write(b"%d\n" % server.pid)
        watchdog.stdin.flush()
        if _wait_until_ready(server, data):
            return port
        log_text = log_path.read_text(errors="replace")
        if server.poll() is None or "could not bind" not in log_text:
            break
    raise RuntimeError(f"PostgreSQL did not start (exit code {server.poll()}):\n{log_text}")


def _wait_until_ready(server: subprocess.Popen[bytes], data: Path) -> bool:
    """Wait for `postmaster.pid` to report "ready" (accepting connections)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    pidfile = data / "postmaster.pid"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            lines = pidfile.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------------------------------------
# Databases on the server
# ---------------------------------------------------------------------------------------------


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _dsn(url: URL) -> str:
    """A libpq-style DSN for asyncpg from a SQLAlchemy URL."""
    return _render(url.set(drivername="postgresql"))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server and return its SQLAlchemy URL."""
    server = make_url(server_url)
    name = name or f"test_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(_dsn(server))
    try:
        await connection.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await connection.close()
    return _render(server.set(database=name))


async def drop_database(server_url: str, url: str) -> None:
    """Drop the database `url` points at, disconnecting anyone still using it."""
    name = make_url(url).database
    if not name:
        raise ValueError(f"no database in {url!r}")
    connection = await asyncpg.connect(_dsn(make_url(server_url)))
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await connection.close()
