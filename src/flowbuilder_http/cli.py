"""The `flowbuilder` command: serve, worker, migrate, dev-token, secrets, config.

Every command reads its settings from the environment and, under it, from a `.env` file in the
working directory when there is one (a variable of the real environment wins)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

from flowbuilder_adapters.settings import (
    BIND_HOST_VARIABLE,
    Mode,
    Settings,
    SettingsError,
    is_loopback_host,
    load_settings,
)
from flowbuilder_http.configuration import keep_secrets_out_of_logs, load_env_file

# The rest is imported where a command needs it, so that `migrate` and `dev-token` start fast
# and small.

_log = logging.getLogger("flowbuilder.cli")

EMBEDDED_BANNER = (
    "FlowBuilder is running in EMBEDDED mode: SQLite and a local token issuer under {dir}/, "
    "bound to 127.0.0.1. It is for trying FlowBuilder out and NOT FOR PRODUCTION.\n"
    "Get a token with: flowbuilder dev-token --user alice\n"
    "API docs: http://127.0.0.1:{port}/docs"
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    args.from_env_file = load_env_file(os.environ)
    keep_secrets_out_of_logs(os.environ)
    try:
        args.run(args)
    except SettingsError as exc:
        for line in exc.problems:
            print(f"flowbuilder: configuration error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowbuilder", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="address to bind (default 0.0.0.0; embedded: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--embedded",
        action="store_true",
        help="no outside services: SQLite and a dev token issuer under ./.flowbuilder/",
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest")
    migrate.set_defaults(run=_migrate)

    dev_token = commands.add_parser("dev-token", help="print a token for the embedded server")
    dev_token.add_argument("--user", required=True, help="the user id to put in the token")
    dev_token.add_argument(
        "--ttl", type=int, default=24 * 3600, help="lifetime in seconds (default one day)"
    )
    dev_token.set_defaults(run=_dev_token)

    worker = commands.add_parser("worker", help="run executions from the queue")
    worker.add_argument(
        "--concurrency", type=int, default=4, help="executions run at once (default 4)"
    )
    worker.set_defaults(run=_worker)

    secrets = commands.add_parser("secrets", help="maintain the stored credential secrets")
    secrets_commands = secrets.add_subparsers(required=True, metavar="ACTION")
    reencrypt = secrets_commands.add_parser(
        "reencrypt", help="move every database secret to the first key of the keyring"
    )
    reencrypt.add_argument("--batch-size", type=int, default=100)
    reencrypt.add_argument("--embedded", action="store_true", help="the embedded database")
    reencrypt.set_defaults(run=_reencrypt)
    sweep = secrets_commands.add_parser(
        "sweep", help="delete secrets no credential references (left by failed writes)"
    )
    sweep.add_argument("--embedded", action="store_true", help="the embedded database")
    sweep.set_defaults(run=_sweep)

    config = commands.add_parser(
        "config", help="print the effective settings (secrets masked) and where each came from"
    )
    config.add_argument(
        "--for",
        dest="mode",
        choices=[m.value for m in Mode],
        default=Mode.SERVE.value,
        help="the process whose settings to check (default serve)",
    )
    config.set_defaults(run=_config)
    return parser


def _serve(args: argparse.Namespace) -> None:
    from flowbuilder_adapters.wiring import prepare_embedded

    mode = Mode.EMBEDDED if args.embedded else Mode.SERVE
    settings = load_settings(os.environ, mode)
    _configure_logging(settings)
    host = args.host or ("127.0.0.1" if settings.embedded else "0.0.0.0")  # noqa: S104
    if settings.embedded:
        if not is_loopback_host(host):
            raise SettingsError(["--host: embedded mode binds to loopback only"])
        prepare_embedded(settings)
        _log.warning(EMBEDDED_BANNER.format(dir=settings.data_dir, port=args.port))
        os.environ["FLOWBUILDER_EMBEDDED"] = "1"
        # The app factory refuses embedded mode unless told, by this, where it is bound.
        os.environ[BIND_HOST_VARIABLE] = host
    _run_server(host, args.port, settings.shutdown_grace_s)


def _run_server(host: str, port: int, grace_seconds: float) -> None:
    """Serve with granian's embedded server: the app runs in this process, on this event loop.

    Granian's usual mode supervises one worker *process*, and the supervisor costs ~37 MiB of
    RSS doing nothing; a replica here is one process, and scaling out is more replicas.
    Granian marks its embedded mode experimental (and says so in the log at start-up); the
    HTTP stack is the same, and `tests/e2e` drive this very command.

    On SIGTERM or SIGINT the server stops accepting at once and waits for the requests in
    flight; those still running after `grace_seconds` are cancelled (answered 500 or cut), so
    that the application's shutdown (the outbox relay's flush, the pools) always runs. Granian's
    own kill timeout would skip it.
    """
    import signal

    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from flowbuilder_http.app import app_from_environment
    from flowbuilder_http.observability import (
        GRANIAN_LOGGING,
        cancel_requests,
        requests_in_flight,
    )

    _log.info(
        "serving HTTP from this process with granian's embedded server (granian calls it"
        " experimental below; it is not FlowBuilder's embedded mode)"
    )

    async def serve() -> None:
        server = Server(
            app_from_environment,
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            log_access=False,  # ours carries the request id (observability.py)
            log_dictconfig=GRANIAN_LOGGING,
        )
        loop = asyncio.get_running_loop()
        stop_accepting: Callable[[], None] = server.stop  # granian's, untyped

        def stop() -> None:
            _log.info(
                "stopping: no new connections; %d request(s) in flight get %g s",
                requests_in_flight(),
                grace_seconds,
            )
            stop_accepting()
            loop.call_later(grace_seconds, cut_short)

        def cut_short() -> None:
            if cancelled := cancel_requests():
                _log.warning("stopping: %d request(s) cut short after the grace period", cancelled)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        await server.serve()
        _log.info("stopped")

    uvloop.run(serve())


def _worker(args: argparse.Namespace) -> None:
    if args.concurrency < 1:
        raise SettingsError(["--concurrency: must be at least 1"])
    import uvloop

    from flowbuilder_adapters.wiring import run_worker

    settings = load_settings(os.environ, Mode.WORKER)
    _configure_logging(settings)
    uvloop.run(run_worker(settings, args.concurrency))  # the API server's loop too


def _migrate(_: argparse.Namespace) -> None:
    from flowbuilder_adapters.wiring import migrate

    settings = load_settings(os.environ, Mode.MIGRATE)
    _configure_logging(settings)
    migrate(settings)
    _log.info("the database schema is up to date")


def _dev_token(args: argparse.Namespace) -> None:
    from flowbuilder_adapters.wiring import issue_dev_token

    print(issue_dev_token(args.user, args.ttl))


def _maintenance_settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(os.environ, Mode.EMBEDDED if args.embedded else Mode.MIGRATE)
    _configure_logging(settings)
    return settings


def _configure_logging(settings: Settings) -> None:
    from flowbuilder_http.observability import configure_logging

    configure_logging(settings.log_format)


def _reencrypt(args: argparse.Namespace) -> None:
    from flowbuilder_adapters.wiring import reencrypt_database

    settings = _maintenance_settings(args)
    if not settings.secrets_in_database:
        raise SettingsError(["USE_DB_SECRETS: reencrypt moves secrets kept in the database (true)"])
    moved = asyncio.run(reencrypt_database(settings, args.batch_size))
    _log.info("%d secret(s) moved to the first key", moved)


def _sweep(args: argparse.Namespace) -> None:
    from flowbuilder_adapters.wiring import sweep_secrets

    swept = asyncio.run(sweep_secrets(_maintenance_settings(args)))
    _log.info("%d unreferenced secret(s) deleted", swept)


def _config(args: argparse.Namespace) -> None:
    from flowbuilder_http.configuration import render, report

    lines, error = report(os.environ, args.from_env_file, Mode(args.mode))
    print(render(lines))
    if error is not None:
        raise error


if __name__ == "__main__":
    main()
