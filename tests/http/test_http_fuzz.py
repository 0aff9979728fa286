"""Bounded fuzz runs of tests/http/fuzz_parser.py (the long run is in the README).

The seeded random mutator always runs; the second test runs atheris (libFuzzer's mutations)
when it is importable and the same harness on the random mutator otherwise, so it never
passes without having checked inputs."""
from __future__ import annotations

from pathlib import Path

import fuzz_parser
import fuzz_util
import pytest

HARNESS = Path(fuzz_parser.__file__)


def test_random_mutator_run() -> None:
    outcomes = fuzz_parser.random_run(4000, seed=1)
    assert sum(outcomes.values()) == 4000
    # the mutated inputs reach both sides of the parser: accepted requests and several
    # different refusals (otherwise the run would not be testing much)
    assert outcomes.get("accepted", 0) > 200, outcomes
    assert sum(1 for k in outcomes if k.startswith("error")) >= 4, outcomes


def test_check_rejects_a_broken_property() -> None:
    """The harness itself can fail: a body longer than Content-Length is caught."""
    events = [("request", {"method": b"POST", "chunked": False, "content_length": 1,
                           "http_version": b"1.1", "headers": [], "upgrade": None,
                           "keep_alive": True}),
              ("body", b"xx"), ("end", [])]
    with pytest.raises(AssertionError):
        fuzz_parser._check_http_events(events, None, fuzz_parser.LIMIT_SETS[1])


def test_bounded_fuzz_run(tmp_path: Path) -> None:
    fuzz_util.bounded_run(HARNESS, fuzz_parser.random_run, tmp_path, runs=5000, fallback_runs=4000)
