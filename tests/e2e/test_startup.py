"""Start-up: bad settings stop it naming the setting; production without weights says what to download."""

from __future__ import annotations

import json
import subprocess

from .conftest import BIN, REPO, start_server


def serve_fails(tmp_path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    proc = start_server(tmp_path, *args, env=env)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode != 0, out + err
    return out + err


def test_bad_port_flag_names_the_setting(tmp_path) -> None:
    text = serve_fails(tmp_path, "--port", "eighty")
    assert "--port" in text and "eighty" in text


def test_bad_profile_from_environment_names_the_variable(tmp_path) -> None:
    text = serve_fails(tmp_path, env={"ATELIER_PROFILE": "staging"})
    assert "ATELIER_PROFILE" in text and "demo or production" in text


def test_a_bad_output_retention_names_the_setting_and_the_units(tmp_path) -> None:
    for value in ("30", "1w", "3x", "0s"):
        text = serve_fails(tmp_path, "--output-retention", value)
        assert "--output-retention" in text and f'"{value}"' in text and "30d" in text, text
    text = serve_fails(tmp_path, env={"ATELIER_OUTPUT_RETENTION": "soon"})
    assert "ATELIER_OUTPUT_RETENTION" in text


def test_production_without_weights_says_what_to_download(tmp_path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    entry = json.loads((REPO / "models" / "flux-cute-3d-kawaii.json").read_text())
    entry["base"] = {"folder": str(tmp_path / "FLUX.1-dev")}
    (models / "flux-cute-3d-kawaii.json").write_text(json.dumps(entry))
    text = serve_fails(tmp_path / "data", "--profile", "production", "--models-dir", str(models))
    assert "base weights not found" in text and "FLUX.1-dev" in text and "huggingface-cli download" in text
    assert not (tmp_path / "data" / "tiny").exists()  # never falls back to the tiny model


def test_help_lists_serve_and_keys() -> None:
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    assert "serve" in out and "keys" in out
