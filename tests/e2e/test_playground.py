"""The web pages in a real browser: Debian's headless Chromium driven by Selenium through chromium-driver, against
the real server and worker on the tiny model. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import pytest
import requests
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from .conftest import REPO, account, settled

SHOTS = REPO / "test-artifacts" / "screenshots"
MODEL = "flux-cute-3d-kawaii"


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    # Debian's driver, named explicitly: nothing is downloaded.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_script_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def open_model(driver, server, key: str | None) -> None:
    driver.get(f"{server.base_url}/models/{MODEL}")
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "field-prompt"))
    if key is not None:
        field = driver.find_element(By.ID, "api-key")
        field.clear()
        field.send_keys(key)


def fill(driver, name: str, value: str) -> None:
    field = driver.find_element(By.ID, f"field-{name}")
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)


def wait_done(driver, timeout: float = 180) -> list[tuple[float, float, str]]:
    """Polls the progress bar until the result is shown; returns every (value, max, status) seen."""
    seen: list[tuple[float, float, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(
            "const p = document.querySelector('#progress');"
            "const img = document.querySelector('#images img');"
            "return [p.value, p.max, document.querySelector('#status').textContent, !!(img && img.complete && img.naturalWidth)];")
        seen.append((state[0], state[1], state[2]))
        if state[3] or state[2].startswith(("Failed", "Canceled", "The request was refused")):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"no result within {timeout} s; last status {seen[-1] if seen else None}")


def test_index_lists_the_catalog_and_assets_are_cached(server, browser) -> None:
    r = requests.get(f"{server.base_url}/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    browser.get(f"{server.base_url}/")
    card = browser.find_element(By.CSS_SELECTOR, f'[data-model="{MODEL}"]')
    assert "FLUX Cute 3D Kawaii" in card.text and "0.03 USD per image" in card.text and "Cute 3d Kawaii" in card.text
    card.find_element(By.LINK_TEXT, "Run the model").click()
    WebDriverWait(browser, 20).until(lambda d: d.current_url.endswith(f"/models/{MODEL}"))
    shot(browser, "01-index-then-model")
    for asset in ("app.js", "style.css"):
        first = requests.get(f"{server.base_url}/static/{asset}", timeout=10)
        assert first.status_code == 200 and "max-age=3600" in first.headers["Cache-Control"], first.headers
        again = requests.get(f"{server.base_url}/static/{asset}", headers={"If-None-Match": first.headers["ETag"]}, timeout=10)
        assert again.status_code == 304
    assert requests.get(f"{server.base_url}/models/no-such-model", timeout=10).status_code == 404


def test_run_on_the_page_shows_progress_image_json_and_code(server, browser) -> None:
    before = settled(server)["balance"]
    open_model(browser, server, server.key)
    browser.refresh()  # the key is kept in the browser's local storage
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "field-prompt"))
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == server.key
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels || !e.labels.length).map(e => e.id)")
    assert unlabelled == []
    fill(browser, "prompt", "Cute 3d Kawaii, a small robot watering a plant")
    fill(browser, "aspect_ratio", "1:1")
    fill(browser, "megapixels", "1")
    fill(browser, "num_inference_steps", "16")
    fill(browser, "seed", "1234")

    # The Code tab mirrors the form, with the key masked.
    browser.find_element(By.ID, "tab-code").click()
    code = browser.find_element(By.ID, "code-output").text
    assert "-F 'num_inference_steps=16'" in code and "-F 'seed=1234'" in code and f"{server.base_url}/api/v4/run" in code
    assert server.key not in code and server.key[:8] in code
    samples = {}
    for language in ("php", "python", "swift"):
        Select(browser.find_element(By.ID, "code-language")).select_by_value(language)
        samples[language] = browser.find_element(By.ID, "code-output").text
        assert server.key not in samples[language]
    assert "CURLOPT_POSTFIELDS" in samples["php"] and "requests.post(" in samples["python"] and "URLSession" in samples["swift"]
    browser.find_element(By.ID, "tab-preview").click()
    shot(browser, "02-form-filled")

    browser.find_element(By.ID, "run-button").click()
    seen = wait_done(browser)
    shot(browser, "03-result")
    steps = [(v, m) for v, m, _ in seen if m == 16]
    assert any(0 < v < 16 for v, _ in steps), f"the progress bar never showed a partial step: {sorted(set(steps))}"
    assert len({v for v, _ in steps}) >= 2
    assert any(s.startswith("Step ") and " of 16" in s for _, _, s in seen)
    img = browser.find_element(By.CSS_SELECTOR, "#images img")
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 1024
    facts = {e.get_attribute("data-fact"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "#facts dd")}
    assert facts["seed"] == "1234" and facts["size"] == "1024×1024" and facts["cost"].startswith("$0.03")
    assert facts["time"].endswith(" s")

    browser.find_element(By.ID, "tab-json").click()
    body = json.loads(browser.find_element(By.ID, "json-output").text)
    assert body["success"] is True and body["data"]["status"] == "succeeded" and body["data"]["seed"] == 1234
    shot(browser, "04-json")
    assert before - account(server)["balance"] == 3  # one image, charged once


def test_errors_are_shown_next_to_their_fields_and_cost_nothing(server, browser) -> None:
    before = settled(server)["balance"]
    open_model(browser, server, server.key)
    fill(browser, "prompt", "Cute 3d Kawaii, a cat")
    fill(browser, "num_inference_steps", "99")
    fill(browser, "guidance", "11")
    browser.find_element(By.ID, "run-button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error-num_inference_steps").text)
    steps_error = browser.find_element(By.ID, "error-num_inference_steps")
    assert "num_inference_steps" in steps_error.text and steps_error.is_displayed()
    assert "guidance" in browser.find_element(By.ID, "error-guidance").text
    assert browser.find_element(By.ID, "field-num_inference_steps").get_attribute("aria-invalid") == "true"
    shot(browser, "05-validation-errors")
    # Without a key: the error is next to the key field, nothing is sent.
    browser.find_element(By.ID, "api-key").clear()
    browser.find_element(By.ID, "api-key").send_keys(" ")
    browser.find_element(By.ID, "run-button").click()
    assert "API key" in browser.find_element(By.ID, "error-api_key").text
    assert account(server)["balance"] == before


def picture_file(tmp_path: Path, size: tuple[int, int]) -> Path:
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(x * 255 // w, y * 255 // h, 60) for y in range(h) for x in range(w)])
    path = tmp_path / f"in-{w}x{h}.png"
    im.save(path)
    return path


def test_image_inputs_by_picker_and_drag_and_drop(server, browser, tmp_path: Path) -> None:
    open_model(browser, server, server.key)
    fill(browser, "prompt", "Cute 3d Kawaii, the same picture as a toy")
    fill(browser, "num_inference_steps", "4")
    browser.find_element(By.ID, "field-image").send_keys(str(picture_file(tmp_path, (96, 64))))
    # A mask dropped on its zone: a real drop event carrying a File.
    mask = io.BytesIO()
    Image.new("L", (48, 32), 255).save(mask, "PNG")
    browser.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const dt = new DataTransfer(); dt.items.add(new File([bytes], 'mask.png', {type: 'image/png'}));"
        "document.querySelector('[data-drop=\"mask\"]').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));",
        __import__("base64").b64encode(mask.getvalue()).decode())
    assert browser.find_element(By.CSS_SELECTOR, '[data-drop="mask"] img.thumb').is_displayed()
    browser.find_element(By.ID, "tab-code").click()
    assert "-F 'image=@in-96x64.png'" in browser.find_element(By.ID, "code-output").text
    browser.find_element(By.ID, "tab-preview").click()
    shot(browser, "06-image-inputs")
    browser.find_element(By.ID, "run-button").click()
    wait_done(browser)
    img = browser.find_element(By.CSS_SELECTOR, "#images img")
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [96, 64]
    browser.find_element(By.ID, "tab-json").click()
    data = json.loads(browser.find_element(By.ID, "json-output").text)["data"]
    assert data["input"]["image"]["origin"] == "upload" and data["input"]["mask"]["width"] == 48
    shot(browser, "07-inpainting-result")


def test_account_page_shows_balance_usage_and_keys(server, browser) -> None:
    open_model(browser, server, server.key)  # the key is stored for the whole origin
    browser.get(f"{server.base_url}/account")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-fact="balance"]'))
    api = requests.get(f"{server.base_url}/api/v4/account", headers={"Authorization": f"Bearer {server.key}"}, timeout=10).json()["data"]
    assert browser.find_element(By.CSS_SELECTOR, '[data-fact="balance"]').text == api["display"]["balance"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#usage tbody tr")
    assert rows, "the usage table is empty after a charged run"
    keys = browser.find_element(By.ID, "keys").text
    assert server.key[:8] in keys and server.key not in keys and "active" in keys
    shot(browser, "08-account")


def test_pages_fit_a_phone_and_work_by_keyboard(server, browser) -> None:
    browser.set_window_size(390, 844)
    try:
        for path in ("/", f"/models/{MODEL}", "/account"):
            browser.get(f"{server.base_url}{path}")
            time.sleep(0.3)
            overflow = browser.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at 390 px wide"
        browser.get(f"{server.base_url}/models/{MODEL}")
        WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "field-prompt"))
        shot(browser, "09-phone-model-page")
        # Tabs follow the ARIA pattern: arrow keys move between them.
        tab = browser.find_element(By.ID, "tab-preview")
        tab.send_keys(Keys.ARROW_RIGHT)
        assert browser.switch_to.active_element.get_attribute("id") == "tab-json"
        assert browser.find_element(By.ID, "panel-json").is_displayed()
        # The form submits from the keyboard.
        field = browser.find_element(By.ID, "field-seed")
        field.send_keys("abc")
        field.send_keys(Keys.ENTER)
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error-seed").text)
    finally:
        browser.set_window_size(1280, 1000)


def test_a_sample_image_appears_once_the_operator_picks_one(server, browser) -> None:
    r = requests.post(f"{server.base_url}/api/v4/run", headers={"Authorization": f"Bearer {server.key}"},
                      data={"model_id": MODEL, "prompt": "Cute 3d Kawaii, a sample", "aspect_ratio": "1:1",
                            "megapixels": "0.25", "num_inference_steps": "2"}, timeout=120)
    rid = r.json()["data"]["request_id"]
    done = server.cli("models", "set-sample", str(rid))
    assert "sample set" in done.stdout
    browser.get(f"{server.base_url}/")
    img = browser.find_element(By.CSS_SELECTOR, f'[data-model="{MODEL}"] img')
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img))
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 512
    sample = requests.get(img.get_attribute("src"), timeout=10)
    assert sample.status_code == 200 and sample.headers["Content-Type"] == "image/webp"
    assert requests.get(f"{server.base_url}/samples/..%2Fatelier.sqlite", timeout=10).status_code == 404
    assert server.cli("models", "set-sample", "1", check=False).returncode != 0
    shot(browser, "10-index-with-sample")
