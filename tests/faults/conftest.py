"""The fault suite (`make test-faults`): the e2e suite's session server (for its tiny model) and a report line per
fault at the end of the run."""

from __future__ import annotations

from tests.e2e.conftest import server  # noqa: F401  (the session server whose tiny model the nodes share)

REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("faults")
        for line in REPORT:
            terminalreporter.write_line(line)
