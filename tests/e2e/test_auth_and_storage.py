"""Keys (CLI and HTTP) and the output folder's boundaries."""

from __future__ import annotations

import re
import socket

import pytest
import requests


def run_status(server, key: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.post(f"{server.base_url}/api/v4/run", headers=headers, timeout=60,
                         data={"model_id": "flux-cute-3d-kawaii", "prompt": "x", "aspect_ratio": "9:9"}, **kwargs)


def test_missing_key_is_401_saying_what_to_do(server) -> None:
    r = run_status(server, None)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    body = r.json()
    assert body["success"] is False and "Authorization: Bearer" in body["message"]


def test_unknown_and_malformed_keys_are_401(server) -> None:
    fake = "atl_" + "A" * 44
    for key in (fake, "not-a-key", server.key[:-1] + ("x" if server.key[-1] != "x" else "y")):
        r = run_status(server, key)
        assert r.status_code == 401, key
        assert "not known" in r.json()["message"]


def test_created_key_works_then_revoked_key_is_401(server) -> None:
    created = server.cli("keys", "create", "--account", "alice")
    key = created.stdout.strip()
    assert re.fullmatch(r"atl_[A-Za-z0-9]{44}", key), created.stdout  # the key alone on stdout
    assert run_status(server, key).status_code == 400  # authenticated: the bad aspect_ratio is what fails

    listing = server.cli("keys", "list").stdout
    assert key[:16] in listing and key not in listing  # prefixes only, never the secret

    server.cli("keys", "revoke", key[:16])
    r = run_status(server, key)
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    assert "revoked" in server.cli("keys", "list").stdout

    missing = server.cli("keys", "revoke", "atl_doesnotexist", check=False)
    assert missing.returncode != 0 and "no key with prefix" in missing.stderr


def test_keys_are_stored_only_as_hashes(server) -> None:
    raw = (server.data_dir / "atelier.sqlite").read_bytes()
    wal = server.data_dir / "atelier.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert server.key.encode() not in raw
    assert server.key[:16].encode() in raw  # the prefix is kept in clear, for lists and revocation
    log = "\n".join(server.stderr_lines)
    assert server.key not in log


def raw_get(server, path: str) -> int:
    """Sends the path byte for byte (requests would normalise `..`)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "path",
    [
        "/storage/outputs/../atelier.sqlite",
        "/storage/outputs/..%2fatelier.sqlite",
        "/storage/outputs/..%2F..%2Fatelier.sqlite",
        "/storage/outputs/%2e%2e/atelier.sqlite",
        "/storage/outputs//etc/passwd",
        "/storage/outputs/%2Fetc%2Fpasswd",
        "/storage/outputs/atelier.sqlite",
        "/storage/outputs/00000000000000000000000000000000.webp",
        "/storage/outputs/..",
        "/storage/../data/atelier.sqlite",
    ],
)
def test_path_traversal_never_escapes_the_output_folder(server, path: str) -> None:
    assert raw_get(server, path) == 404


def test_output_is_served_with_type_and_cache_headers(server) -> None:
    r = requests.post(f"{server.base_url}/api/v4/run", headers={"Authorization": f"Bearer {server.key}"}, timeout=120,
                      json={"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii cake", "aspect_ratio": "16:9",
                            "megapixels": "0.25", "num_inference_steps": 2, "output_format": "jpeg"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["width"], data["height"]) == (672, 384)
    img = requests.get(data["output"], timeout=30)
    assert img.status_code == 200 and img.headers["Content-Type"] == "image/jpeg"
    assert "immutable" in img.headers["Cache-Control"]
    assert img.content[:3] == b"\xff\xd8\xff"
    assert re.fullmatch(r".*/storage/outputs/[0-9a-f]{32}\.jpg", data["output"])


def test_expect_100_continue_is_answered_before_the_body_is_sent(server) -> None:
    """PHP's cURL sends `Expect: 100-continue` with bodies over 1 KiB and waits for the interim response."""
    host, port = server.base_url.removeprefix("http://").split(":")
    body = ("model_id=flux-cute-3d-kawaii&aspect_ratio=9:9&prompt=" + "a" * 2000).encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST /api/v4/run HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.key}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        interim = s.recv(4096)  # no body sent yet: only the interim response can arrive
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        s.sendall(body)
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
    final = (interim + rest).split(b"\r\n\r\n", 1)[1]
    assert b"HTTP/1.1 400" in final  # the body arrived whole and was validated (aspect_ratio 9:9)


def test_oversized_body_is_413_before_it_is_sent(server) -> None:
    """The Content-Length alone is enough: the server answers 413 without waiting for 40 MB that never comes."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST /api/v4/run HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {40 * 1024 * 1024}\r\n\r\n{{".encode()
        )
        # The head and the body may come in separate packets: read until the body's Content-Length is in.
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < content_length(reply):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"body_too_large"' in reply


def content_length(reply: bytes) -> int:
    """The Content-Length of a reply's head (1 until the head is complete, so the reader waits for it)."""
    if b"\r\n\r\n" not in reply:
        return 1
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0
