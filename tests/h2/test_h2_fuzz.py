"""Bounded fuzz runs of tests/h2/fuzz_h2.py (the long run: see its docstring).

The seeded random mutator always runs; the second test runs atheris (libFuzzer's mutations)
when it is importable and the same harness on the random mutator otherwise, so it never
passes without having checked inputs."""
from __future__ import annotations

from pathlib import Path

import fuzz_h2
import fuzz_util
import pytest

from engine import _h2

HARNESS = Path(fuzz_h2.__file__)


def test_random_mutator_run() -> None:
    outcomes = fuzz_h2.random_run(1500, seed=1)
    assert sum(outcomes.values()) == 1500
    # the mutated inputs reach both accepted requests and several different connection
    # errors (otherwise the run would not be testing much)
    assert outcomes.get("request", 0) > 50, outcomes
    assert sum(1 for k in outcomes if k.startswith("error")) >= 4, outcomes


def test_seeds_are_served() -> None:
    for seed in fuzz_h2.SEEDS:
        assert fuzz_h2.check(seed) in ("request", "ok")


def test_check_rejects_a_broken_property() -> None:
    """The harness itself can fail: an output frame after GOAWAY is caught."""
    bad = fuzz_h2.frame(_h2.GOAWAY, 0, 0, b"\0" * 8) + fuzz_h2.frame(_h2.PING, 1, 0, b"\0" * 8)
    with pytest.raises(AssertionError):
        fuzz_h2._check_output(bad, {})
    with pytest.raises(AssertionError):
        fuzz_h2._check_output(fuzz_h2.frame(_h2.RST_STREAM, 0, 2, b"\0" * 4), {})


def test_bounded_fuzz_run(tmp_path: Path) -> None:
    fuzz_util.bounded_run(HARNESS, fuzz_h2.random_run, tmp_path, runs=3000, fallback_runs=1500)
