"""The worker's main loop over real in-memory streams with the real runner."""

from __future__ import annotations

import io
import json
from pathlib import Path

from atelier_worker.serve import Channel, serve
from atelier_worker.stats import StatsOptions, StatsReporter

from .conftest import FIXTURES


def run_lines(runner, lines: list[str], keep_stats: bool = False) -> list[dict]:
    """What the worker wrote; its `stats` reports (after ready and after each call) left out unless asked for."""
    out = io.StringIO()
    code = serve(runner, io.StringIO("\n".join(lines) + "\n"), Channel(out), StatsOptions(interval_s=0))
    assert code == 0
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    return messages if keep_stats else [m for m in messages if m["type"] != "stats"]


def test_ready_progress_result_then_shutdown(runner, tmp_path: Path) -> None:
    gen = json.loads((FIXTURES / "generate.json").read_text())
    gen.update(width=256, height=256, num_inference_steps=2, outputs=[{"path": str(tmp_path / "x.webp"), "seed": 7}])
    messages = run_lines(runner, [json.dumps(gen), '{"type":"shutdown"}', json.dumps(gen)])
    kinds = [m["type"] for m in messages]
    # Nothing after shutdown is processed.
    assert kinds == ["ready", "progress", "progress", "result"]
    assert messages[-1]["images"][0]["seed"] == 7 and (tmp_path / "x.webp").exists()


def test_stats_follow_ready_and_each_call_with_prompt_cache_counts_and_no_device_on_cpu(runner, tmp_path: Path) -> None:
    gen = json.loads((FIXTURES / "generate.json").read_text())
    gen.update(width=64, height=64, num_inference_steps=1, prompt="Cute 3d Kawaii, a stats test",
               outputs=[{"path": str(tmp_path / "s.webp"), "seed": 1}])
    again = {**gen, "job_id": "212121212121299", "outputs": [{"path": str(tmp_path / "t.webp"), "seed": 2}]}
    messages = run_lines(runner, [json.dumps(gen), json.dumps(again), '{"type":"shutdown"}'], keep_stats=True)
    kinds = [m["type"] for m in messages if m["type"] != "progress"]
    assert kinds == ["ready", "stats", "result", "stats", "result", "stats"]
    first, after_one, after_two = [m for m in messages if m["type"] == "stats"]
    assert first["devices"] == [] and first["lora_switches"] == 0  # CPU: no device gauges; one model: no switch
    # The second run repeats the prompt: a hit, where the first was a miss.
    assert after_one["prompt_cache_misses"] == first["prompt_cache_misses"] + 1
    assert after_two["prompt_cache_hits"] == after_one["prompt_cache_hits"] + 1


def test_a_stats_reporter_sends_on_its_interval_and_survives_a_failing_read(runner) -> None:
    import threading

    got: list = []
    sent = threading.Event()

    def send(message) -> None:
        got.append(message)
        if len(got) >= 2:
            sent.set()

    reporter = StatsReporter(runner, send, StatsOptions(interval_s=0.05))
    reporter.start()
    try:
        assert sent.wait(5), "no periodic stats within 5 s"
    finally:
        reporter.stop()
    broken = StatsReporter(runner, lambda _: (_ for _ in ()).throw(OSError("pipe closed")), StatsOptions(interval_s=0))
    broken.report()  # logged, not raised


def test_bad_requests_get_error_lines_and_the_worker_stays_up(runner, tmp_path: Path) -> None:
    gen = json.loads((FIXTURES / "generate.json").read_text())
    gen.update(width=1000, outputs=[{"path": str(tmp_path / "y.webp"), "seed": 1}])
    messages = run_lines(runner, ["not json", json.dumps(gen), '{"type":"shutdown"}'])
    assert [m["type"] for m in messages] == ["ready", "error", "error"]
    assert messages[1]["job_id"] is None and messages[1]["code"] == "invalid_request"
    assert messages[2]["job_id"] == gen["job_id"] and "width" in messages[2]["message"]


def test_unwritable_output_is_an_encode_error(runner, tmp_path: Path) -> None:
    gen = json.loads((FIXTURES / "generate.json").read_text())
    gen.update(width=256, height=256, num_inference_steps=1,
               outputs=[{"path": str(tmp_path / "no-such-dir" / "z.webp"), "seed": 1}])
    messages = run_lines(runner, [json.dumps(gen), '{"type":"shutdown"}'])
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "encode_failed"


def test_a_cancel_stops_the_job_at_its_next_step_and_the_worker_serves_the_next(runner, tmp_path: Path) -> None:
    gen = json.loads((FIXTURES / "generate.json").read_text())
    long = dict(gen, job_id="1", width=256, height=256, num_inference_steps=500,
                outputs=[{"path": str(tmp_path / "long.webp"), "seed": 1}])
    short = dict(gen, job_id="2", width=256, height=256, num_inference_steps=1,
                 outputs=[{"path": str(tmp_path / "short.webp"), "seed": 2}])
    messages = run_lines(runner, [json.dumps(long), '{"type":"cancel","job_id":"1"}', json.dumps(short), '{"type":"shutdown"}'])
    ends = [m for m in messages if m["type"] in ("result", "error")]
    assert [(m["type"], m["job_id"]) for m in ends] == [("error", "1"), ("result", "2")]
    assert ends[0]["code"] == "canceled"
    assert sum(1 for m in messages if m["type"] == "progress" and m["job_id"] == "1") < 500
    assert not (tmp_path / "long.webp").exists() and (tmp_path / "short.webp").exists()


def test_a_cancel_line_needs_a_job_id(runner) -> None:
    messages = run_lines(runner, ['{"type":"cancel"}', '{"type":"shutdown"}'])
    assert messages[-1]["type"] == "error" and "job_id" in messages[-1]["message"]


def test_stdin_closing_without_a_shutdown_stops_the_current_job(runner, tmp_path: Path) -> None:
    """The server died (kill -9): nobody will take the result, so the worker stops at the next step and exits."""
    gen = json.loads((FIXTURES / "generate.json").read_text())
    gen.update(width=256, height=256, num_inference_steps=500, outputs=[{"path": str(tmp_path / "x.webp"), "seed": 1}])
    messages = run_lines(runner, [json.dumps(gen)])
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "canceled"
    assert not (tmp_path / "x.webp").exists()
