"""Webhooks over real HTTP: a local receiver verifies every delivery with the `standardwebhooks` package."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .conftest import SEED_PROMPT, account, data_dir_sharing_tiny, launch, settled, stop


class Receiver:
    """A webhook endpoint on loopback. `script` lists the statuses to answer in turn (then 204s)."""

    def __init__(self, port: int = 0, script: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.script = list(script or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = outer.script.pop(0) if outer.script else 204
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/atelier"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received) < n:
            time.sleep(0.05)
        assert len(self.received) >= n, f"{len(self.received)} of {n} deliveries arrived"


@pytest.fixture(scope="module")
def hooked(tmp_path_factory, server):
    """A server that may call loopback receivers (`--outbound-allow 127.0.0.1`), and the demo account's secret."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "webhooks"), "--outbound-allow", "127.0.0.1")
    shown = srv.cli("accounts", "show", "demo").stdout
    srv.secret = re.search(r"webhook secret: (whsec_\S+)", shown).group(1)
    yield srv
    stop(srv)


def run_with_hook(srv, url: str, **extra) -> requests.Response:
    return requests.post(f"{srv.base_url}/api/v4/run", headers={"Authorization": f"Bearer {srv.key}"}, timeout=180,
                         data={"model_id": "flux-cute-3d-kawaii", "prompt": SEED_PROMPT, "aspect_ratio": "1:1",
                               "megapixels": "0.25", "num_inference_steps": "2", "webhook": url, **extra})


def verified(srv, delivery: tuple[dict[str, str], bytes]) -> dict:
    headers, body = delivery
    return Webhook(srv.secret).verify(body, headers)


def test_start_and_completed_are_delivered_signed_with_the_check_body(hooked) -> None:
    receiver = Receiver()
    try:
        r = run_with_hook(hooked, receiver.url)
        assert r.status_code == 200, r.text
        request_id = r.json()["data"]["request_id"]
        receiver.wait_for(2)
        time.sleep(1)
        assert len(receiver.received) == 2  # each event once
        start, completed = (verified(hooked, d) for d in receiver.received)
        assert start["data"]["status"] == "running" and start["data"]["request_id"] == request_id
        assert completed["data"]["status"] == "succeeded" and completed["data"]["output"] == r.json()["data"]["output"]
        check = requests.get(f"{hooked.base_url}/api/v4/check", params={"request_id": request_id},
                             headers={"Authorization": f"Bearer {hooked.key}"}, timeout=30).json()
        assert completed == check
        ids = [h["webhook-id"] for h, _ in receiver.received]
        assert len(set(ids)) == 2 and all(i.startswith("msg_") for i in ids)
        assert all(h["content-type"] == "application/json" for h, _ in receiver.received)
    finally:
        receiver.close()


def test_a_tampered_body_or_a_stale_timestamp_fails_verification(hooked) -> None:
    receiver = Receiver()
    try:
        assert run_with_hook(hooked, receiver.url, webhook_events_filter="completed").status_code == 200
        receiver.wait_for(1)
        headers, body = receiver.received[0]
        verified(hooked, (headers, body))
        with pytest.raises(WebhookVerificationError):
            verified(hooked, (headers, body.replace(b'"succeeded"', b'"failed"')))
        hook = Webhook(hooked.secret)
        old = datetime.now(tz=timezone.utc) - timedelta(hours=1)
        stale = {**headers, "webhook-timestamp": str(int(old.timestamp())),
                 "webhook-signature": hook.sign(headers["webhook-id"], old, body.decode())}
        with pytest.raises(WebhookVerificationError):
            hook.verify(body, stale)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 32).verify(body, headers)  # another account's secret
    finally:
        receiver.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_receiver_that_is_down_then_back_gets_the_event_once_with_one_webhook_id(hooked) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    url = f"http://127.0.0.1:{port}/hooks/atelier"
    r = run_with_hook(hooked, url, webhook_events_filter="completed")
    assert r.status_code == 200
    request_id = r.json()["data"]["request_id"]
    failed = re.compile(r"webhook (msg_\w+) \(completed of run %d\) attempt (\d+) failed" % request_id)
    deadline = time.monotonic() + 60
    attempts: list[tuple[str, int]] = []
    while time.monotonic() < deadline and len(attempts) < 2:
        attempts = [(m.group(1), int(m.group(2))) for m in map(failed.search, hooked.stderr_lines) if m]
        time.sleep(0.1)
    assert len(attempts) >= 2, "the first attempts did not fail as expected"
    # Back up, but the first answer is a redirect: it is not followed and counts as a failed attempt.
    receiver = Receiver(port=port, script=[302])
    try:
        receiver.wait_for(2, timeout=120)
        time.sleep(1)
        ids = {i for i, _ in attempts} | {h["webhook-id"] for h, _ in receiver.received}
        assert len(ids) == 1  # the same webhook-id on every attempt
        assert len(receiver.received) == 2  # the redirect, then the accepted delivery; never again after a 2xx
        assert verified(hooked, receiver.received[-1])["data"]["request_id"] == request_id
        # /metrics counted the failed attempts and the delivery.
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{hooked.base_url}/metrics", timeout=10).text
        attempts_by_outcome = {s.labels["outcome"]: s.value for f in text_string_to_metric_families(text)
                               for s in f.samples if s.name == "atelier_webhook_attempts_total"}
        assert attempts_by_outcome.get("retry", 0) >= 3 and attempts_by_outcome.get("delivered", 0) >= 1, attempts_by_outcome
    finally:
        receiver.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://10.0.0.1/hook", "http://[::1]/hook"])
def test_webhooks_to_internal_addresses_are_refused_at_no_cost(server, url: str) -> None:
    before = settled(server)
    r = requests.post(f"{server.base_url}/api/v4/run", headers={"Authorization": f"Bearer {server.key}"}, timeout=60,
                      data={"model_id": "flux-cute-3d-kawaii", "prompt": "x", "webhook": url})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["param"] == "webhook" and body["error"]["code"] == "unsafe_url"
    assert "--outbound-allow" in body["message"]
    assert account(server)["balance"] == before["balance"]


@pytest.mark.parametrize("fields, code", [({"webhook": "ftp://example.com/x"}, "invalid_url"),
                                          ({"webhook_events_filter": "completed"}, "requires_webhook"),
                                          ({"webhook": "https://example.com/x", "webhook_events_filter": "done"}, "invalid_choice")])
def test_bad_webhook_parameters_are_400(server, fields: dict, code: str) -> None:
    r = requests.post(f"{server.base_url}/api/v4/run", headers={"Authorization": f"Bearer {server.key}"}, timeout=60,
                      data={"model_id": "flux-cute-3d-kawaii", "prompt": "x", **fields})
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_json_clients_send_the_filter_as_an_array(hooked) -> None:
    receiver = Receiver()
    try:
        r = requests.post(f"{hooked.base_url}/api/v4/run", headers={"Authorization": f"Bearer {hooked.key}"}, timeout=180,
                          json={"model_id": "flux-cute-3d-kawaii", "prompt": "x", "aspect_ratio": "1:1", "megapixels": "0.25",
                                "num_inference_steps": 1, "webhook": receiver.url, "webhook_events_filter": ["completed"]})
        assert r.status_code == 200, r.text
        receiver.wait_for(1)
        time.sleep(1)
        assert len(receiver.received) == 1 and json.loads(receiver.received[0][1])["data"]["status"] == "succeeded"
    finally:
        receiver.close()
