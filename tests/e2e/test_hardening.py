"""Hostile input, by class: addresses that lead back inside (every IPv6 form that carries an internal IPv4
address), bodies that grow past the limit without Content-Length, malformed multipart, repeated JSON keys,
control characters and invalid UTF-8 in every encoding, and undeclared methods. Each refused request must cost
nothing and queue nothing; a bounded fuzz run keeps the classes closed."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import threading
import time
from urllib.parse import urlparse

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import account, data_dir_sharing_tiny, launch, settled, stop

BASE = {"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii cat", "aspect_ratio": "1:1",
        "megapixels": "0.25", "num_inference_steps": "1"}


@pytest.fixture(scope="module")
def hard(tmp_path_factory, server):
    """A server of this module's own: the accepted runs of the fuzz run must not meet the account's run cap."""
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "hardening-data"),
                 "--max-concurrent-runs", "100000", "--rate-limit", "1000000")
    yield srv
    stop(srv)


class CountingListener:
    """Listens on 127.0.0.1 and on every IPv6 address (dual stack, so IPv4-mapped connections land here too) on
    one port, and counts connections: a refused address must never be connected to."""

    def __init__(self) -> None:
        self.v4 = socket.socket(socket.AF_INET)
        self.v4.bind(("127.0.0.1", 0))
        self.port = self.v4.getsockname()[1]
        self.v6 = socket.socket(socket.AF_INET6)
        self.v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.v6.bind(("::", self.port))
        except OSError:
            self.v6.close()
            self.v6 = None
        self.accepted = 0
        for s in filter(None, [self.v4, self.v6]):
            s.listen(16)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        for s in filter(None, [self.v4, self.v6]):
            s.close()


# IPv6 forms of 127.0.0.1 and of other internal IPv4 addresses, and ranges that are never globally reachable.
REFUSED_HOSTS = [
    "[::7f00:1]", "[::127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:0:7f00:1]", "[64:ff9b::7f00:1]", "[64:ff9b:1::7f00:1]",
    "[2002:7f00:1::1]", "[2001:0:7f00:1:8000:63bf:80ff:fffe]", "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "[100::1]", "[fec0::1]", "[2001:20::1]", "[2001:db8::1]", "[3fff::1]", "[ff02::1]", "[::ffff:a9fe:a9fe]",
    "192.88.99.1", "198.18.0.1", "255.255.255.255", "224.0.0.1", "0.0.0.0", "[::]",
]


def jobs_in(srv) -> int:
    with sqlite3.connect(srv.data_dir / "atelier.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


def post(srv, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {srv.key}", "Prefer": "wait=0", **kwargs.pop("headers", {})}
    return requests.post(f"{srv.base_url}/api/v4/run", headers=headers, timeout=60, **kwargs)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_every_internal_form_is_refused_as_image_and_webhook_without_a_connection(hard, host: str) -> None:
    listener = CountingListener()
    before, queued = settled(hard), jobs_in(hard)
    try:
        url = f"http://{host}:{listener.port}/x"
        for fields in ({**BASE, "image": url + ".png"}, {**BASE, "webhook": url}):
            r = post(hard, data=fields)
            assert r.status_code == 422, r.text
            err = r.json()["error"]
            assert err["code"] == "unsafe_url" and err["param"] in ("image", "webhook"), r.text
        time.sleep(0.2)
        assert listener.accepted == 0
        assert account(hard)["balance"] == before["balance"] and jobs_in(hard) == queued
    finally:
        listener.close()


def chunked_post(srv, path: str, content_type: str, total: int) -> tuple[int, dict]:
    """Sends `total` bytes without Content-Length (chunked) and returns the answer, however early it came."""
    u = urlparse(srv.base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.putrequest("POST", path)
    conn.putheader("Authorization", f"Bearer {srv.key}")
    conn.putheader("Content-Type", content_type)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"a" * (1 << 20)
    sent = 0
    try:
        while sent < total:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before the body ended
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_chunked_body_past_the_limit_is_413(hard, content_type: str) -> None:
    queued = jobs_in(hard)
    status, body = chunked_post(hard, "/api/v4/run", content_type, 40_000_000)
    assert status == 413 and body["error"]["code"] == "body_too_large", body
    assert jobs_in(hard) == queued


def multipart(parts: list[tuple[str, str]], boundary: str = "b0und") -> bytes:
    out = b""
    for name, value in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return out


FILE_PART = b'--b0und\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n'
MALFORMED = {
    "no closing boundary": multipart(list(BASE.items())),
    "wrong closing boundary": multipart(list(BASE.items())) + b"--b0unX--\r\n",
    "misspelt boundary line": multipart(list(BASE.items())) + b"--b0undary--\r\n",
    "unterminated part": multipart(list(BASE.items())) + b'--b0und\r\nContent-Disposition: form-data; name="seed"\r\n\r\n42',
    "truncated file part": multipart(list(BASE.items())) + FILE_PART,
    "headers without a blank line": multipart(list(BASE.items())) + b'--b0und\r\nContent-Disposition: form-data; name="seed"\r\n--b0und--\r\n',
    "another boundary than Content-Type's": multipart(list(BASE.items()), "other") + b"--other--\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_multipart_is_400_and_queues_nothing(hard, case: str) -> None:
    before, queued = settled(hard), jobs_in(hard)
    r = post(hard, data=MALFORMED[case], headers={"Content-Type": "multipart/form-data; boundary=b0und"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_body", r.text
    assert "multipart" in r.json()["message"]
    assert account(hard)["balance"] == before["balance"] and jobs_in(hard) == queued
    # The same parts, closed properly, are a run.
    good = multipart(list(BASE.items())) + b"--b0und--\r\n"
    assert post(hard, data=good, headers={"Content-Type": "multipart/form-data; boundary=b0und"}).status_code == 200


def test_a_json_key_given_twice_is_refused_by_name(hard) -> None:
    queued = jobs_in(hard)
    body = '{"model_id": "flux-cute-3d-kawaii", "prompt": "a", "aspect_ratio": "1:1", "prompt": "b"}'
    r = post(hard, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("duplicate_parameter", "prompt")
    assert jobs_in(hard) == queued


TEXT_CASES = {
    "NUL": ("a\x00b", "U+0000"), "escape": ("a\x1b[31mb", "U+001B"), "DEL": ("a\x7fb", "U+007F"),
    "C1": ("a\u0085b", "U+0085"), "lone CR": ("a\rb", "U+000D"),
}


def encodings(prompt_bytes: bytes) -> dict[str, tuple[bytes, str]]:
    """The same request carrying `prompt_bytes` (raw UTF-8 or not) in each body encoding."""
    fields = [(k, v.encode()) for k, v in BASE.items() if k != "prompt"] + [("prompt", prompt_bytes)]
    form = b"&".join(k.encode() + b"=" + b"".join(b"%%%02X" % c for c in v) for k, v in fields)
    parts = b"".join(b'--b0und\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n\r\n' + v + b"\r\n"
                     for k, v in fields) + b"--b0und--\r\n"
    try:
        as_json = json.dumps({k: v.decode() for k, v in fields}).encode()
    except UnicodeDecodeError:
        as_json = b"{" + b",".join(b'"' + k.encode() + b'":"' + v + b'"' for k, v in fields) + b"}"
    return {"json": (as_json, "application/json"), "form": (form, "application/x-www-form-urlencoded"),
            "multipart": (parts, "multipart/form-data; boundary=b0und")}


@pytest.mark.parametrize("case", list(TEXT_CASES) + ["invalid UTF-8"])
def test_control_characters_and_invalid_utf8_are_refused_in_every_encoding(hard, case: str) -> None:
    raw = b"Cute \xff\xfe cat" if case == "invalid UTF-8" else TEXT_CASES[case][0].encode()
    queued = jobs_in(hard)
    for encoding, (body, content_type) in encodings(raw).items():
        r = post(hard, data=body, headers={"Content-Type": content_type})
        assert r.status_code == 400, f"{encoding}: {r.text}"
        err = r.json()["error"]
        assert err["param"] == "prompt" and err["code"] == "invalid_text", f"{encoding}: {r.text}"
        if case in TEXT_CASES:
            assert TEXT_CASES[case][1] in r.json()["message"]
    assert jobs_in(hard) == queued
    # Tab, line feed and CR LF are text; CR LF arrives as LF.
    for body, content_type in encodings("Cute 3d Kawaii\tcat\r\non a mat\n".encode()).values():
        r = post(hard, data=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("method, path, allow", [("DELETE", "/api/v4/run", "POST"), ("PUT", "/api/v4/check", "GET, POST"),
                                                 ("PATCH", "/api/v4/models/x", "GET"), ("POST", "/healthz", "GET"),
                                                 ("DELETE", "/storage/outputs/a.webp", "GET")])
def test_an_undeclared_method_is_405_with_allow(hard, method: str, path: str, allow: str) -> None:
    r = requests.request(method, f"{hard.base_url}{path}", headers={"Authorization": f"Bearer {hard.key}"}, timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == allow, (r.status_code, r.headers, r.text)
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert requests.get(f"{hard.base_url}/no/such/route", timeout=10).status_code == 404


# --- a bounded fuzz run: mutated bodies of each encoding, never a 5xx, nothing queued when refused ---

def mutations() -> st.SearchStrategy[tuple[bytes, str]]:
    good_json = json.dumps(BASE).encode()
    good_form = "&".join(f"{k}={v}" for k, v in BASE.items()).encode()
    good_multipart = multipart(list(BASE.items())) + b"--b0und--\r\n"
    bases = st.sampled_from([(good_json, "application/json"), (good_form, "application/x-www-form-urlencoded"),
                             (good_multipart, "multipart/form-data; boundary=b0und")])
    noise = st.binary(min_size=1, max_size=8) | st.sampled_from(
        [b"\x00", b"\xff", b"\r\n", b"--b0und", b"--b0und--", b"%", b"%zz", b'"prompt":"x",', b"\\u0000", b"{", b"]"])

    @st.composite
    def mutate(draw) -> tuple[bytes, str]:
        body, content_type = draw(bases)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(body)))
            action = draw(st.sampled_from(["insert", "truncate", "delete", "replace"]))
            if action == "insert":
                body = body[:i] + draw(noise) + body[i:]
            elif action == "truncate":
                body = body[:i]
            elif action == "delete":
                body = body[:i] + body[i + draw(st.integers(1, 16)):]
            else:
                piece = draw(noise)
                body = body[:i] + piece + body[i + len(piece):]
        return body, content_type

    return mutate()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(case=mutations())
def test_fuzzed_bodies_never_fail_the_server_and_refused_ones_queue_nothing(hard, case: tuple[bytes, str]) -> None:
    body, content_type = case
    queued, held = jobs_in(hard), account(hard)["held"]
    r = post(hard, data=body, headers={"Content-Type": content_type})
    assert r.status_code < 500, (body, r.text)
    if r.status_code != 200:
        assert r.json()["success"] is False
        assert jobs_in(hard) == queued and account(hard)["held"] <= held, (body, r.text)
    else:
        assert jobs_in(hard) == queued + 1
