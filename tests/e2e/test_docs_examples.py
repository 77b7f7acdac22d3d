"""Every example in docs/examples.md marked `<!-- example: LANG -->` runs against a live server and makes an image."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys

import pytest
import requests
from PIL import Image

from .conftest import REPO

DOC = REPO / "docs" / "examples.md"
BLOCK = re.compile(r"<!-- example: (\w+) -->\s*```\w*\n(.*?)```", re.S)
RUNNERS = {
    "curl": ["bash", "{file}"],
    "php": ["php", "{file}"],
    "python": [sys.executable, "{file}"],
    "swift": ["swift", "{file}"],
}
SUFFIX = {"curl": ".sh", "php": ".php", "python": ".py", "swift": ".swift"}


def examples() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text())


def test_the_reference_has_an_example_per_language() -> None:
    assert sorted(lang for lang, _ in examples()) == ["curl", "php", "python", "swift"]


@pytest.mark.parametrize("lang, code", examples(), ids=[lang for lang, _ in examples()])
def test_example_runs_against_a_live_server(server, tmp_path, lang: str, code: str) -> None:
    tool = RUNNERS[lang][0]
    if shutil.which(tool) is None and tool != sys.executable:
        pytest.fail(f"{tool} is not installed; .ci/run installs it (php-cli, php-curl)")
    assert "http://127.0.0.1:8080" in code and "YOUR_ATELIER_KEY" in code  # the only things a user changes
    source = code.replace("http://127.0.0.1:8080", server.base_url).replace("YOUR_ATELIER_KEY", server.key)
    file = tmp_path / f"example{SUFFIX[lang]}"
    file.write_text(source)
    cmd = [part.format(file=file) for part in RUNNERS[lang]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    url = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(re.escape(server.base_url) + r"/storage/outputs/[0-9a-f]{32}\.webp", url), proc.stdout
    image = Image.open(io.BytesIO(requests.get(url, timeout=30).content))
    assert image.format == "WEBP" and image.size == (1024, 1024)
