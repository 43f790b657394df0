"""Metrics of real processes: two API processes on one host each count what they served, and
only that."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support.processes import clean_env, free_port, server


def live_requests(base: str) -> float:
    """`GET /health/live` answered 200, as the process at `base` counts them."""
    text = httpx.get(f"{base}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "flowbuilder_http_requests_total"
        and sample.labels == {"method": "GET", "route": "/health/live", "status": "200"}
    )


def test_two_api_processes_on_one_host_each_count_only_their_own_requests(tmp_path: Path) -> None:
    ports = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    with (
        server(
            ["serve", "--embedded", "--port", str(ports[0])], clean_env(), ports[0], tmp_path / "a"
        ) as a,
        server(
            ["serve", "--embedded", "--port", str(ports[1])], clean_env(), ports[1], tmp_path / "b"
        ) as b,
    ):
        for _ in range(3):
            httpx.get(f"{a}/health/live")
        for _ in range(5):
            httpx.get(f"{b}/health/live")
        counted = live_requests(a), live_requests(b)

    # Each started once it answered its first /health/live (support.processes.server).
    assert counted == (1 + 3, 1 + 5)
