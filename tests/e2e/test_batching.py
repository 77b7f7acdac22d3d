"""Batching end to end (`--batch-size 4`): runs that queue up behind a busy worker and share model, size, steps,
guidance, LoRA scale and go_fast are made in one pipeline call, each with its own seed, output, result and
charge; an incompatible one waits for its own call; a run canceled inside a batch is not charged; a worker killed
mid-batch loses no run."""

from __future__ import annotations

import os
import signal

import requests

from .conftest import account, data_dir_sharing_tiny, launch, stop
from .test_durability import PRICE, TERMINAL, auth, cancel, check, running_with_progress, submit, wait_for


def occupy_the_worker(srv) -> int:
    """A long run that keeps the only worker busy while the runs under test queue up behind it."""
    blocker = submit(srv, num_inference_steps="50", megapixels="1", seed="1")
    wait_for(srv, blocker, running_with_progress)
    return blocker


def test_compatible_queued_runs_share_one_call_and_are_each_charged(tmp_path_factory, server) -> None:
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "batching"), "--batch-size", "4")
    try:
        before = account(srv)
        blocker = occupy_the_worker(srv)
        # 40 steps: long enough to cancel one of them while their shared call runs.
        same = [submit(srv, seed=str(100 + i), prompt=f"Cute 3d Kawaii, friend number {i}", output_format="png",
                       num_inference_steps="40") for i in range(3)]
        other = submit(srv, num_inference_steps="3", seed="7")  # another step count: not in that batch
        canceled = submit(srv, seed="200", num_inference_steps="40")  # compatible with `same`, canceled in its batch
        assert all(check(srv, i)["status"] == "queued" for i in [*same, other, canceled])
        assert cancel(srv, blocker).status_code == 200
        wait_for(srv, canceled, running_with_progress)
        assert cancel(srv, canceled).status_code == 200
        ends = {i: wait_for(srv, i, lambda d: d["status"] in TERMINAL) for i in [*same, other, canceled]}
        for i, seed in zip(same, (100, 101, 102), strict=True):
            assert ends[i]["status"] == "succeeded", ends[i]
            assert ends[i]["timings"]["batch_size"] == 4  # the three and the one canceled inside the batch
            assert ends[i]["seed"] == seed
            png = requests.get(ends[i]["output"], headers=auth(srv), timeout=30)
            assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert len({ends[i]["output"] for i in same}) == 3
        assert ends[other]["status"] == "succeeded" and ends[other]["timings"]["batch_size"] == 1
        assert ends[canceled]["status"] == "canceled"
        assert check(srv, blocker)["status"] == "canceled"
        after = account(srv)
        # One charge per delivered image: three in the batch, one alone; the two canceled runs cost nothing.
        assert after["balance"] == before["balance"] - 4 * PRICE and after["held"] == 0
    finally:
        stop(srv)


def test_a_worker_killed_during_a_batch_loses_no_run_and_charges_each_once(tmp_path_factory, server) -> None:
    srv = launch(data_dir_sharing_tiny(tmp_path_factory, server, "batching-crash"), "--batch-size", "3")
    try:
        before = account(srv)
        blocker = occupy_the_worker(srv)
        runs = [submit(srv, seed=str(300 + i), num_inference_steps="40") for i in range(3)]
        assert cancel(srv, blocker).status_code == 200
        wait_for(srv, runs[0], running_with_progress)
        assert all(check(srv, i)["status"] == "running" for i in runs)  # one call holds all three
        os.kill(srv.workers()[0]["pid"], signal.SIGKILL)
        ends = {i: wait_for(srv, i, lambda d: d["status"] in TERMINAL) for i in runs}
        for i, seed in zip(runs, (300, 301, 302), strict=True):
            assert ends[i]["status"] == "succeeded" and ends[i]["attempts"] == 2, ends[i]
            assert ends[i]["seed"] == seed and ends[i]["timings"]["batch_size"] == 3
        after = account(srv)
        assert after["balance"] == before["balance"] - 3 * PRICE and after["held"] == 0
    finally:
        stop(srv)
