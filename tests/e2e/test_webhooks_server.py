"""Webhooks against a real `flowbuilder serve --embedded` process (its embedded worker runs
what they start): a signed call accepted and run, wrong, stale and replayed ones refused, a
`when_finished` hook answered by its `webhook.respond` node, 1 MiB + 1 byte refused; and
nothing of the secret or the signatures in the server's log."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import httpx

from flowbuilder_core.webhooks.signatures import sign

from support.processes import clean_env, free_port, run, server

MIB = 1024 * 1024


def dev_token(cwd: Path, user: str) -> dict[str, str]:
    result = run(["dev-token", "--user", user], clean_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


def hooked(
    base: str, auth: dict[str, str], *nodes: dict[str, Any], **trigger: Any
) -> tuple[str, str]:
    """An active workflow whose webhook trigger feeds `nodes`; its hook URL and secret."""
    chain = [{"id": "hook", "type": "trigger.webhook", "parameters": trigger}, *nodes]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(chain)]
    body = {"name": "Hooked", "definition": {"nodes": chain, "edges": edges}}
    created = httpx.post(f"{base}/api/workflows", json=body, headers=auth)
    assert created.status_code == 201, created.text
    url = f"{base}{created.headers['location']}"
    assert httpx.post(f"{url}/activate", headers=auth).status_code == 200
    hook = httpx.get(f"{url}/webhook", headers=auth).json()["url"]
    secret = httpx.post(f"{url}/webhook/secret", headers=auth).json()["secret"]
    return f"{base}{hook}", secret


def finished(base: str, auth: dict[str, str], execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution: dict[str, Any] = httpx.get(
            f"{base}/api/executions/{execution_id}", headers=auth
        ).json()
        if execution["status"] in ("succeeded", "failed", "cancelled"):
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not finish")


def test_signed_webhooks_run_and_forged_ones_are_refused(tmp_path: Path) -> None:
    port = free_port()
    auth = dev_token(tmp_path, "alice")
    echo = {"id": "echo", "type": "data.set", "parameters": {"value": "{{ input.body }}"}}
    reply = {
        "id": "reply",
        "type": "webhook.respond",
        "parameters": {
            "status": 201,
            "headers": {"X-Order": "{{ to_string(input.body.order) }}"},
            "body": {"thanks": "{{ input.body.order }}"},
        },
    }
    body = b'{"order": 42}'
    json_type = {"Content-Type": "application/json"}

    with server(
        ["serve", "--embedded", "--port", str(port)], clean_env(), port, cwd=tmp_path
    ) as base:
        hook, secret = hooked(base, auth, echo)
        waiting_hook, waiting_secret = hooked(base, auth, reply, respond="when_finished")
        now = int(time.time())
        signature = {"X-FlowBuilder-Signature": sign(secret, now, body)}

        accepted = httpx.post(hook, content=body, headers={**json_type, **signature})
        replayed = httpx.post(hook, content=body, headers={**json_type, **signature})
        wrong = httpx.post(
            hook,
            content=body,
            headers={**json_type, "X-FlowBuilder-Signature": sign("wrong", now, body)},
        )
        stale = httpx.post(
            hook,
            content=body,
            headers={**json_type, "X-FlowBuilder-Signature": sign(secret, now - 301, body)},
        )
        run_of_accepted = finished(base, auth, accepted.json()["execution_id"])
        answered = httpx.post(
            waiting_hook,
            content=body,
            headers={**json_type, "X-FlowBuilder-Signature": sign(waiting_secret, now, body)},
            timeout=30,
        )
        at_the_limit = httpx.post(
            hook,
            content=b" " * MIB,
            headers={"X-FlowBuilder-Signature": sign(secret, now + 1, b" " * MIB)},
        )
        too_large = httpx.post(
            hook,
            content=b" " * (MIB + 1),
            headers={"X-FlowBuilder-Signature": sign(secret, now + 2, b" " * (MIB + 1))},
        )
        webhook_runs = httpx.get(f"{base}/api/executions?trigger=webhook", headers=auth).json()

    assert accepted.status_code == 202
    assert accepted.headers["location"] == f"/api/executions/{accepted.json()['execution_id']}"
    assert run_of_accepted["status"] == "succeeded"
    assert run_of_accepted["trigger"] == "webhook"
    assert run_of_accepted["steps"][1]["output"] == {"order": 42}
    assert "x-flowbuilder-signature" not in run_of_accepted["input"]["headers"]
    assert [r.status_code for r in (replayed, wrong, stale)] == [401, 401, 401]
    assert replayed.json() == {**wrong.json(), "request_id": replayed.json()["request_id"]}
    assert answered.status_code == 201, answered.text
    assert answered.json() == {"thanks": 42}
    assert answered.headers["x-order"] == "42"
    assert at_the_limit.status_code == 202
    assert too_large.status_code == 413
    assert too_large.json()["type"] == "urn:flowbuilder:problem:payload-too-large"
    assert len(webhook_runs["items"]) == 3
    log = next(tmp_path.glob("server-*.log")).read_text()
    for secret_value in (secret, waiting_secret, signature["X-FlowBuilder-Signature"]):
        assert secret_value not in log
    assert "/hooks/{hook_id}" in log
    assert hook.rsplit("/", 1)[1] not in log
