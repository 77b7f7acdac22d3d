"""GET /metrics on real processes, parsed with Prometheus' own text parser (prometheus_client): the counters move
as runs succeed, fail and are canceled, the gauges say what is queued and which worker slots are idle, and the
endpoint is where the flags put it (the API port with a token, or a listener of its own)."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import REPO, data_dir_sharing_tiny, launch, stop

TOKEN = "metrics-test-token-0123456789"
MODEL = "flux-cute-3d-kawaii"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, server):
    """A server whose catalog entry has the seed-rule test checker (seed % 4 == 1 is flagged: a failed run)."""
    data = data_dir_sharing_tiny(tmp_path_factory, server, "metrics-data")
    models = tmp_path_factory.mktemp("metrics-models")
    entry = json.loads((REPO / "models" / f"{MODEL}.json").read_text())
    entry["safety_checker"] = "fixture:seed-mod:4:1"
    (models / f"{MODEL}.json").write_text(json.dumps(entry))
    srv = launch(data, "--models-dir", str(models), "--metrics-token", TOKEN)
    yield srv
    stop(srv)


def scrape(url: str, token: str | None = TOKEN) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.get(url, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def run(srv, **fields) -> requests.Response:
    body = {"model_id": MODEL, "prompt": "Cute 3d Kawaii, a cake", "aspect_ratio": "1:1", "megapixels": "0.25",
            "num_inference_steps": "2", **fields}
    return requests.post(f"{srv.base_url}/api/v4/run", data=body, headers={"Authorization": f"Bearer {srv.key}"}, timeout=120)


def test_counters_move_as_runs_succeed_fail_and_are_canceled(metered) -> None:
    url = f"{metered.base_url}/metrics"
    before = scrape(url)
    ok = run(metered, seed="2", num_outputs="2")  # seeds 2 and 3: neither is flagged
    assert ok.status_code == 200, ok.text
    flagged = run(metered, seed="5")  # the checker flags seed 5: the run fails, nothing is charged
    assert flagged.status_code == 422, flagged.text
    refused = run(metered, seed="2", image="http://127.0.0.1:9/cat.png")  # an internal address: never fetched
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unsafe_url", refused.text
    slow = run(metered, seed="2", num_inference_steps="50", megapixels="1", wait="0")
    request_id = slow.json()["data"]["request_id"]
    holding = scrape(url)  # the slow run is queued or running: it holds one image's price
    canceled = requests.post(f"{metered.base_url}/api/v4/cancel", data={"request_id": request_id},
                             headers={"Authorization": f"Bearer {metered.key}"}, timeout=30)
    assert canceled.status_code == 200, canceled.text
    # The store ends the canceled run at once; its worker slot is busy until the worker stops at its next step.
    deadline = time.monotonic() + 60
    while True:
        after = scrape(url)
        if (value(after, "atelier_runs_running", model=MODEL) == 0 and value(after, "atelier_runs_queued", model=MODEL) == 0
                and value(after, "atelier_worker_slots", state="idle") == 1):
            break
        assert time.monotonic() < deadline, "a run is still open after 60 s"
        time.sleep(0.2)

    def moved(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("atelier_runs_submitted_total", model=MODEL) == 3
    assert moved("atelier_runs_ended_total", model=MODEL, status="succeeded", code="") == 1
    assert moved("atelier_runs_ended_total", model=MODEL, status="failed", code="safety_flagged") == 1
    assert moved("atelier_runs_canceled_total", model=MODEL) == 1
    assert moved("atelier_images_generated_total", model=MODEL) == 2
    price = json.loads((REPO / "models" / f"{MODEL}.json").read_text())["price_per_image"]["minor_units"]
    assert moved("atelier_credit_captured_minor_total", model=MODEL) == 2 * price
    assert value(holding, "atelier_credit_holds_open", model=MODEL) == 1
    assert value(holding, "atelier_credit_held_minor", model=MODEL) == price
    assert value(after, "atelier_credit_holds_open", model=MODEL) == 0 and value(after, "atelier_credit_held_minor", model=MODEL) == 0
    assert moved("atelier_outbound_refused_total", purpose="input_image", reason="address") == 1
    assert moved("atelier_runs_started_total", model=MODEL) >= 2
    # Histograms reach the 300 s job timeout; the succeeded run's inference time was recorded.
    assert moved("atelier_run_inference_seconds_count", model=MODEL) == 1
    assert ("atelier_run_duration_seconds_bucket", (("le", "300.0"), ("model", MODEL), ("status", "succeeded"))) in after
    assert moved("atelier_run_queue_seconds_count", model=MODEL) >= 2
    # HTTP requests by route pattern and status; the scrape itself is the one request in flight.
    assert moved("atelier_http_requests_total", route="/api/v4/run", method="POST", status="200") >= 2
    assert moved("atelier_http_requests_total", route="/api/v4/run", method="POST", status="422") == 2
    assert value(after, "atelier_http_requests_in_flight") == 1
    assert value(after, "atelier_http_request_duration_seconds_count", route="/api/v4/run", method="POST", status="200") >= 2
    # The worker's stats reports: the prompt cache counted every run that reached it; on CPU no GPU gauges.
    deadline = time.monotonic() + 30
    while True:
        after = scrape(url)
        looked = moved("atelier_prompt_cache_hits_total") + moved("atelier_prompt_cache_misses_total")
        if looked >= 2:
            break
        assert time.monotonic() < deadline, f"prompt cache counters moved by {looked} only"
        time.sleep(0.5)
    assert moved("atelier_lora_switches_total") == 0  # one model
    assert not [name for name, _ in after if name.startswith("atelier_gpu_")]
    # Sampled at the scrape: the one worker slot is idle again.
    assert value(after, "atelier_worker_slots", state="idle") == 1 and value(after, "atelier_worker_slots", state="busy") == 0


def test_the_token_is_required_and_never_leaks(metered) -> None:
    url = f"{metered.base_url}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-the-same-length!"}, {"Authorization": f"Token {TOKEN}"}):
        r = requests.get(url, headers=headers, timeout=10)
        assert r.status_code == 401 and "metrics-token" in r.text, r.text
    assert TOKEN not in "\n".join(metered.stderr_lines + metered.stdout_lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_metrics_address_serves_metrics_apart_from_the_api_port(tmp_path_factory, server) -> None:
    port = free_port()
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "metrics-address"), "--metrics-address", f"127.0.0.1:{port}")
    try:
        on_api = requests.get(f"{srv.base_url}/metrics", timeout=10)
        assert on_api.status_code == 404 and f"127.0.0.1:{port}" in on_api.text, on_api.text
        samples = scrape(f"http://127.0.0.1:{port}/metrics", token=None)
        assert value(samples, "atelier_runs_queued", model=MODEL) == 0
        assert value(samples, "atelier_worker_slots", state="idle") == 1
    finally:
        stop(srv)


def test_the_dashboard_and_the_alerts_use_only_documented_metrics(metered) -> None:
    """docs/observability.md's table is the list; the dashboard's queries and the alert rules name only metrics in it,
    and every metric this server has recorded so far is in it."""
    import re

    doc = (REPO / "docs" / "observability.md").read_text()
    section = doc[doc.index("## Metrics"):doc.index("## Logs")]
    table = {name for row in section.splitlines() if row.startswith("| `atelier_")
             for name in re.findall(r"`(atelier_[a-z_]+)`", row.split("|")[1])}
    base = lambda n: re.sub(r"_(bucket|count|sum)$", "", n)  # noqa: E731
    dashboard = (REPO / "docs" / "grafana-dashboard.json").read_text()
    assert {base(n) for n in re.findall(r"atelier_[a-z_]+", dashboard)} <= table
    assert {base(n) for n in re.findall(r"atelier_[a-z_]+", section.split("Example alert rules")[1])} <= table
    recorded = {base(name) for name, _ in scrape(f"{metered.base_url}/metrics")}
    assert recorded and recorded <= table, recorded - table
