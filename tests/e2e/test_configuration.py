"""Configuration from a `.env` file under the environment, and `flowbuilder config`, as a user
runs them: the real command in a directory of its own."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from support.factories import make_workflow_body
from support.processes import clean_env, free_port, run, server

CANARY = "canary-config-7d1e"


def config_lines(cwd: Path, *args: str, **env: str) -> dict[str, tuple[str, str]]:
    """`flowbuilder config` as {variable: (value, source)}; it must succeed."""
    result = run(["config", *args], clean_env(**env), cwd=cwd)
    assert result.returncode == 0, result.stderr
    rows = (line.split() for line in result.stdout.splitlines())
    return {row[0]: (" ".join(row[1:-1]), row[-1]) for row in rows if row}


def test_a_dotenv_file_configures_the_process_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# a comment\nEXECUTION_RATE_BURST=7\nexport WRITE_RATE_BURST=9\nMETRICS_PORT='9200'\n"
    )

    lines = config_lines(tmp_path, "--for", "embedded", WRITE_RATE_BURST="11")

    assert lines["EXECUTION_RATE_BURST"] == ("7", ".env")
    assert lines["METRICS_PORT"] == ("9200", ".env")
    assert lines["WRITE_RATE_BURST"] == ("11", "environment")
    assert lines["MAX_WORKFLOWS_PER_USER"] == ("1000", "default")
    assert lines["LOG_FORMAT"] == ("text", "default")


def test_config_masks_every_secret_whether_from_the_environment_or_the_dotenv_file(
    tmp_path: Path,
) -> None:
    key = base64.b64encode(CANARY.encode() * 3).decode()
    (tmp_path / ".env").write_text(
        f"DB_PASSWORD={CANARY}-db\nCLERK_SECRET_KEY=sk_{CANARY}\nIDEMPOTENCY_HMAC_KEY={key}\n"
    )

    result = run(
        ["config", "--for", "worker"],
        clean_env(
            DATABASE_URL=f"postgresql://app:{CANARY}-url@db.internal:5432/flow",
            SECRETS_ENCRYPTION_KEY=f"k1:{key}",
            USE_DB_SECRETS="true",
        ),
        cwd=tmp_path,
    )

    shown = result.stdout + result.stderr
    assert CANARY not in shown
    assert key not in shown
    assert "postgresql://app:****@db.internal:5432/flow" in shown
    assert "DB_PASSWORD" in shown
    assert "CLERK_SECRET_KEY" in shown


def test_a_bad_value_in_the_dotenv_file_stops_start_up_with_one_line_naming_it(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(f"EXECUTION_RATE_BURST={CANARY}\n")

    result = run(["serve", "--embedded", "--port", str(free_port())], clean_env(), cwd=tmp_path)

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert lines == [
        "flowbuilder: configuration error: EXECUTION_RATE_BURST: must be a positive integer"
    ]


def test_the_server_runs_with_what_the_dotenv_file_says(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WRITE_RATE_BURST=1\nWRITE_RATE_PER_SECOND=1\n")
    token = run(["dev-token", "--user", "alice"], clean_env(), cwd=tmp_path).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    port = free_port()

    with server(["serve", "--embedded", "--port", str(port)], clean_env(), port, tmp_path) as base:
        first = httpx.post(f"{base}/api/workflows", json=make_workflow_body(), headers=auth)
        second = httpx.post(f"{base}/api/workflows", json=make_workflow_body(), headers=auth)

    assert first.status_code == 201
    assert second.status_code == 429
