"""Every example in docs/dialects.md marked `<!-- dialect-example: LANG -->` runs against a live server and makes an
image: the official replicate and openai clients (Python), curl, and Node's fetch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

DOC = REPO / "docs" / "dialects.md"
BLOCK = re.compile(r"<!-- dialect-example: (\w+) -->\s*```\w*\n(.*?)```", re.S)
RUNNERS = {"curl": (["bash"], ".sh"), "python": ([sys.executable], ".py"), "javascript": (["node"], ".mjs")}


def examples() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text())


def test_each_dialect_has_an_example_per_language() -> None:
    assert sorted(lang for lang, _ in examples()) == ["curl", "curl", "javascript", "javascript", "python", "python"]


@pytest.mark.parametrize("lang, code", examples(), ids=[f"{lang}-{i}" for i, (lang, _) in enumerate(examples())])
def test_example_runs_against_a_live_server(server, tmp_path, lang: str, code: str) -> None:
    command, suffix = RUNNERS[lang]
    if shutil.which(command[0]) is None and command[0] != sys.executable:
        pytest.fail(f"{command[0]} is not installed; scripts/system-deps.sh installs it")
    assert "http://127.0.0.1:8080" in code and "YOUR_ATELIER_KEY" in code  # the only things a user changes
    file = tmp_path / f"example{suffix}"
    file.write_text(code.replace("http://127.0.0.1:8080", server.base_url).replace("YOUR_ATELIER_KEY", server.key))
    proc = subprocess.run([*command, str(file)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    image = re.escape(server.base_url) + r"/storage/outputs/[0-9a-f]{32}\.(webp|png|jpg)"
    assert re.fullmatch(f"{image}|data:image/(webp|png|jpeg);base64,[A-Za-z0-9+/=]+", last), proc.stdout
    assert "failed" not in proc.stdout
