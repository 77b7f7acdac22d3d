"""Prepaid credit over real HTTP: holds, 402s, charges per delivered image, and the ledger audit."""

from __future__ import annotations

import json

import pytest
import requests

from .conftest import REPO, account, concurrently, data_dir_sharing_tiny, launch, stop


@pytest.fixture(scope="module")
def priced(tmp_path_factory, server):
    """flux-cute-3d-kawaii priced at 0.75 USD per image, and an account `payer` holding 5.00 USD."""
    models = tmp_path_factory.mktemp("priced-models")
    entry = json.loads((REPO / "models" / "flux-cute-3d-kawaii.json").read_text())
    entry["price_per_image"] = {"currency": "USD", "minor_units": 75}
    (models / "flux-cute-3d-kawaii.json").write_text(json.dumps(entry))
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "priced-data"), "--models-dir", str(models), "--workers", "1")
    srv.cli("accounts", "create", "payer")
    srv.cli("credits", "add", "--account", "payer", "5", "--reason", "test top-up")
    srv.payer = srv.cli("keys", "create", "--account", "payer").stdout.strip()
    yield srv
    stop(srv)


def small_run(srv, key: str, **fields) -> requests.Response:
    return requests.post(f"{srv.base_url}/api/v4/run", headers={"Authorization": f"Bearer {key}"}, timeout=300,
                         data={"model_id": "flux-cute-3d-kawaii", "prompt": "Cute 3d Kawaii cup", "aspect_ratio": "1:1",
                               "megapixels": "0.25", "num_inference_steps": "1", **fields})


def test_twenty_concurrent_runs_against_five_dollars_accept_exactly_six(priced) -> None:
    responses = concurrently(20, lambda: small_run(priced, priced.payer))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 6 + [402] * 14, codes
    refused = next(r for r in responses if r.status_code == 402).json()
    assert refused["error"]["code"] == "insufficient_credit"
    assert "0.75 USD" in refused["message"] and "atelier credits add --account payer" in refused["message"]
    money = account(priced, priced.payer)
    assert (money["balance"], money["held"], money["available"]) == (50, 0, 50)


def test_a_refused_run_is_not_queued_and_costs_nothing(priced) -> None:
    before = account(priced, priced.payer)
    r = small_run(priced, priced.payer, num_outputs="2")  # 1.50 needed, 0.50 available
    assert r.status_code == 402
    after = account(priced, priced.payer)
    # The spend window ends "now", so its bounds may tick between the two reads; the money may not move.
    for money in (before, after):
        money["spend"].pop("from"), money["spend"].pop("to")
    assert after == before


def test_account_and_models_show_prices_and_balances(priced) -> None:
    models = requests.get(f"{priced.base_url}/api/v4/models", headers={"Authorization": f"Bearer {priced.key}"}, timeout=10).json()
    price = models["data"][0]["price_per_image"]
    assert price == {"currency": "USD", "minor_units": 75, "display": "0.75 USD"}
    one = requests.get(f"{priced.base_url}/api/v4/models/flux-cute-3d-kawaii", headers={"Authorization": f"Bearer {priced.key}"}, timeout=10)
    assert one.status_code == 200 and one.json()["data"]["id"] == "flux-cute-3d-kawaii"
    assert requests.get(f"{priced.base_url}/api/v4/models/nope", headers={"Authorization": f"Bearer {priced.key}"}, timeout=10).status_code == 404
    demo = account(priced)
    assert demo["account"] == "demo" and demo["display"]["balance"].endswith(" USD")


def test_cli_shows_the_ledger_with_reasons(priced) -> None:
    shown = priced.cli("accounts", "show", "payer").stdout
    assert "test top-up" in shown and "capture" in shown and "available: 0.50 USD" in shown
    bad = priced.cli("credits", "adjust", "--account", "payer", "--amount", "-1", "--reason", "too much", check=False)
    assert bad.returncode != 0 and "below zero" in bad.stderr
    ok = priced.cli("credits", "adjust", "--account", "payer", "--amount", "-0.25", "--reason", "goodwill correction")
    assert "available 0.25 USD" in ok.stdout
    assert "ledger OK" in priced.cli("accounts", "audit").stdout


def test_usage_pages_the_charged_runs_and_account_sums_spend_per_model(priced) -> None:
    headers = {"Authorization": f"Bearer {priced.payer}"}
    first = requests.get(f"{priced.base_url}/api/v4/usage", params={"limit": "4"}, headers=headers, timeout=10).json()["data"]
    assert len(first["items"]) == 4 and first["next_cursor"]
    second = requests.get(f"{priced.base_url}/api/v4/usage", params={"limit": "4", "cursor": first["next_cursor"]},
                          headers=headers, timeout=10).json()["data"]
    assert len(second["items"]) == 2 and "next_cursor" not in second
    items = first["items"] + second["items"]
    assert len({i["request_id"] for i in items}) == 6
    assert all(i["amount"] == 75 and i["images"] == 1 and i["model_id"] == "flux-cute-3d-kawaii" for i in items)
    spend = account(priced, priced.payer)["spend"]["by_model"]
    assert spend == [{"model_id": "flux-cute-3d-kawaii", "runs": 6, "images": 6, "amount": 450}]
    # Another account sees none of it.
    demo_usage = requests.get(f"{priced.base_url}/api/v4/usage", headers={"Authorization": f"Bearer {priced.key}"}, timeout=10).json()
    assert all(i["request_id"] not in {j["request_id"] for j in items} for i in demo_usage["data"]["items"])
    bad = requests.get(f"{priced.base_url}/api/v4/usage", params={"limit": "0"}, headers=headers, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


def test_accounts_show_and_rotate_the_webhook_secret(priced) -> None:
    shown = priced.cli("accounts", "show", "payer").stdout
    secret = next(line.split()[2] for line in shown.splitlines() if line.startswith("webhook secret:"))
    assert secret.startswith("whsec_") and secret in priced.cli("accounts", "show", "payer").stdout  # stable
    rotated = priced.cli("accounts", "rotate-webhook-secret", "payer").stdout.split()[-1]
    assert rotated.startswith("whsec_") and rotated != secret
    assert rotated in priced.cli("accounts", "show", "payer").stdout
    assert secret not in "\n".join(priced.stderr_lines) and rotated not in "\n".join(priced.stderr_lines)  # never logged
