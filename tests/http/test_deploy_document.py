"""docs/deploy.md's JSON documents are real: every one parses; each task definition runs a
command the CLI accepts with settings the process accepts, secrets coming from `secrets`; each
policy grants what the code calls, on this deployment's resources, and no wildcard beyond the
one Secrets Manager needs."""

from __future__ import annotations

import ast
import base64
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from flowbuilder_adapters.queues import sqs
from flowbuilder_adapters.secrets import aws
from flowbuilder_adapters.settings import Mode, load_settings
from flowbuilder_http import cli
from flowbuilder_http.configuration import DEFAULTS, SHOWN

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
_JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.DOTALL | re.MULTILINE)
_SETTING_ROW = re.compile(r"^\| `([A-Z0-9_]+)` \|")
MODES = {
    "flowbuilder-api": Mode.SERVE,
    "flowbuilder-worker": Mode.WORKER,
    "flowbuilder-migrate": Mode.MIGRATE,
    "flowbuilder-maintenance": Mode.MIGRATE,  # `secrets sweep` reads what `migrate` reads
}
SECRET_SAMPLES = {
    "DB_PASSWORD": "a password",
    "CLERK_SECRET_KEY": "sk_live_sample",
    "IDEMPOTENCY_HMAC_KEY": base64.b64encode(bytes(32)).decode(),
    "SECRETS_ENCRYPTION_KEY": "k1:" + base64.b64encode(bytes(32)).decode(),
    "DATABASE_URL": "postgresql://flowbuilder:pw@db:5432/flowbuilder",
}
"""What the secrets hold, for checking that a task definition's settings are complete."""
PROVISIONING = {"create_queue", "set_queue_attributes"}
"""AWS calls of `ensure_queue`, for tests and LocalStack: production queues are provisioned."""
BATCHES = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
"""Batch calls are authorised by the action of one message."""


def sections() -> list[tuple[str, Any]]:
    """Each JSON document with the `###` heading it is under."""
    found: list[tuple[str, Any]] = []
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    for match in _JSON_BLOCK.finditer(text):
        heading = [line for line in text[: match.start()].splitlines() if line.startswith("### ")]
        found.append((heading[-1].removeprefix("### "), json.loads(match.group(1))))
    return found


def task_definitions() -> dict[str, dict[str, Any]]:
    return {doc["family"]: doc for _, doc in sections() if "containerDefinitions" in doc}


def policies() -> dict[str, dict[str, Any]]:
    return {heading: doc for heading, doc in sections() if "Statement" in doc}


def container(family: str) -> dict[str, Any]:
    (only,) = task_definitions()[family]["containerDefinitions"]
    return dict(only)


def environment_of(family: str) -> dict[str, str]:
    found = container(family)
    values = {e["name"]: e["value"] for e in found.get("environment", [])}
    values.update({s["name"]: SECRET_SAMPLES[s["name"]] for s in found.get("secrets", [])})
    return values


def queue_arns() -> set[str]:
    url = environment_of("flowbuilder-api")["WORKFLOW_QUEUE_URL"]
    region, account, name = re.fullmatch(
        r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d+)/([\w-]+)", url
    ).groups()  # type: ignore[union-attr]
    return {f"arn:aws:sqs:{region}:{account}:{name}", f"arn:aws:sqs:{region}:{account}:{name}-dlq"}


def statements(policy: dict[str, Any]) -> list[tuple[set[str], set[str]]]:
    """Each statement's actions and resources."""
    found = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions, resources = statement["Action"], statement["Resource"]
        found.append(
            (
                {actions} if isinstance(actions, str) else set(actions),
                {resources} if isinstance(resources, str) else set(resources),
            )
        )
    return found


def actions_on(policy: dict[str, Any], resource: str) -> set[str]:
    return {
        a for actions, resources in statements(policy) if resource in resources for a in actions
    }


def aws_calls(module: Any) -> set[str]:
    """The IAM actions of the client calls a module makes (`client.send_message(...)`)."""
    calls = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Attribute | ast.Name)
            and getattr(node.func.value, "attr", getattr(node.func.value, "id", "")).endswith(
                "client"
            )
            and node.func.attr not in PROVISIONING
        ):
            action = "".join(part.title() for part in node.func.attr.split("_"))
            calls.add(BATCHES.get(action, action))
    return calls


# --- the tests --------------------------------------------------------------------------------


def test_every_json_document_parses_and_the_four_task_definitions_are_there() -> None:
    found = sections()

    assert len(found) >= 8
    assert set(task_definitions()) == set(MODES)
    assert set(policies()) >= {
        "The API's task role",
        "The worker's task role",
        "The maintenance task's role",
        "The execution role",
    }


@pytest.mark.parametrize("family", sorted(MODES))
def test_each_task_runs_a_command_the_cli_accepts_with_settings_its_process_accepts(
    family: str,
) -> None:
    definition = task_definitions()[family]
    found = container(family)
    environment = {e["name"] for e in found.get("environment", [])}
    secrets = {s["name"] for s in found.get("secrets", [])}

    assert found["command"][0] == "flowbuilder"
    cli._parser().parse_args(found["command"][1:])
    assert environment | secrets <= set(DEFAULTS), "only settings FlowBuilder reads"
    assert not environment & (set(DEFAULTS) - SHOWN), "a secret setting in plain text"
    assert secrets <= set(DEFAULTS) - SHOWN, "secrets are for secret settings"
    load_settings(environment_of(family), MODES[family])  # raises when incomplete or invalid
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert definition["taskRoleArn"].startswith("arn:aws:iam::")
    assert definition["executionRoleArn"].startswith("arn:aws:iam::")
    assert found["logConfiguration"]["logDriver"] == "awslogs"
    assert len({container(f)["image"] for f in MODES}) == 1, "one image, several commands"


@pytest.mark.parametrize("family", ["flowbuilder-api", "flowbuilder-worker"])
def test_services_stop_after_their_grace_period_and_report_their_health(family: str) -> None:
    found = container(family)
    settings = load_settings(environment_of(family), MODES[family])
    probe = " ".join(found["healthCheck"]["command"])

    assert found["healthCheck"]["command"][0] == "CMD"
    assert settings.shutdown_grace_s + 15 <= found["stopTimeout"] <= 120
    if family == "flowbuilder-api":
        assert [p["containerPort"] for p in found["portMappings"]] == [8000]
        assert "http://127.0.0.1:8000/health/live" in probe
    else:
        assert settings.metrics_enabled
        assert f"http://127.0.0.1:{settings.metrics_port}/metrics" in probe
        assert [p["containerPort"] for p in found["portMappings"]] == [settings.metrics_port]
        assert settings.metrics_host == "0.0.0.0"  # noqa: S104 - reachable by the scraper


def test_no_policy_grants_a_wildcard_action_or_resource_beyond_listing_secrets() -> None:
    for heading, policy in policies().items():
        assert policy["Version"] == "2012-10-17"
        for actions, resources in statements(policy):
            assert all(re.fullmatch(r"[a-z]+:[A-Z][A-Za-z]+", a) for a in actions), heading
            if "*" in resources:
                assert actions == {"secretsmanager:ListSecrets"}, heading


def test_the_roles_grant_exactly_the_queue_and_secret_resources_of_this_deployment() -> None:
    queues = queue_arns()
    credentials = f"secret:{environment_of('flowbuilder-api')['SECRETS_PREFIX']}*"
    assert {environment_of(f).get("SECRETS_PREFIX") for f in MODES} - {None} == {
        environment_of("flowbuilder-api")["SECRETS_PREFIX"]
    }, "one deployment, one prefix"
    roles = ("The API's task role", "The worker's task role", "The maintenance task's role")

    for heading in roles:
        for actions, resources in statements(policies()[heading]):
            service = {a.split(":")[0] for a in actions}
            if service == {"sqs"}:
                assert resources <= queues, heading
            else:
                assert resources == {"*"} or all(r.endswith(credentials) for r in resources)
    config = {r for _, rs in statements(policies()["The execution role"]) for r in rs}
    for family in MODES:
        for secret in container(family).get("secrets", []):
            assert any(secret["valueFrom"].startswith(r.rstrip("*")) for r in config), family


def test_each_process_may_make_the_aws_calls_its_code_makes() -> None:
    queue, dead_letters = sorted(queue_arns())
    api, worker = policies()["The API's task role"], policies()["The worker's task role"]
    maintenance = policies()["The maintenance task's role"]
    granted = {
        a.split(":")[1]
        for policy in (api, worker, maintenance)
        for actions, _ in statements(policy)
        for a in actions
    }
    called = aws_calls(sqs) | aws_calls(aws)

    assert {"SendMessage", "ReceiveMessage", "CreateSecret", "ListSecrets"} <= called
    assert called <= granted
    assert {"sqs:SendMessage", "sqs:GetQueueAttributes"} <= actions_on(api, queue)
    assert {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
    } <= actions_on(worker, queue)
    for policy in (api, worker):
        assert {"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage"} <= actions_on(
            policy, dead_letters
        )
    assert "sqs:SendMessage" not in actions_on(worker, queue), "workers never send"


def test_the_settings_table_lists_every_setting() -> None:
    lines = DEPLOY_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Settings")

    rows = {m.group(1) for m in map(_SETTING_ROW.match, lines[start:]) if m is not None}

    assert rows == set(DEFAULTS)


def test_the_image_runs_as_a_user_that_is_not_root_and_probes_its_liveness() -> None:
    dockerfile = (DEPLOY_DOC.parents[1] / "docker" / "Dockerfile").read_text(encoding="utf-8")
    runtime = dockerfile.split("AS runtime", 1)[1]

    user = re.search(r"^USER (\S+)", runtime, re.MULTILINE)
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", runtime, re.MULTILINE | re.DOTALL)

    assert user is not None
    assert user.group(1).split(":")[0] not in ("root", "0")
    assert healthcheck is not None
    assert "/health/live" in healthcheck.group(1)
    assert 'CMD ["flowbuilder", "serve"]' in runtime
