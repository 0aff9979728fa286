"""Bounded fuzz runs of tests/h2/fuzz_hpack.py (the long runs are in its docstring).

The seeded random mutator always runs; the last test runs atheris (libFuzzer's mutations) when
it is importable and the same harness on the random mutator otherwise, so it never passes
without having checked inputs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import fuzz_hpack  # noqa: E402
import fuzz_util  # noqa: E402

HARNESS = Path(fuzz_hpack.__file__)


def test_seeds_outcomes() -> None:
    """The seeds decode under the roomy configurations; under the tiny tables (64 and 0 bytes)
    the RFC blocks' references to evicted entries are refused (or the lists pass the 200-byte
    limit); the bomb seed hits the limit."""
    *seeds, dropped_then_used, bomb = fuzz_hpack.seeds()
    for data in seeds:
        max_table, max_list, max_hard = fuzz_hpack.CONFIGS[data[0]]
        if max_hard:              # 150 bytes, up to 600: the RFC request lists are dropped
            assert fuzz_hpack.check(data) in ("accepted", "dropped"), data
        elif max_table >= 256:
            assert fuzz_hpack.check(data) == "accepted", data
        else:                     # evicted entries referenced, or the 200-byte list limit
            outcome = fuzz_hpack.check(data)
            assert "beyond the tables" in outcome or "HeaderListTooLarge" in outcome, outcome
    assert fuzz_hpack.check(bomb).startswith("error HeaderListTooLarge")
    # the first block is dropped, the second refers to an entry it inserted: accepted
    assert fuzz_hpack.check(dropped_then_used) == "accepted"
    first_only = fuzz_hpack.unpack(dropped_then_used)[1][:1]
    assert fuzz_hpack.check(fuzz_hpack.pack(4, first_only)) == "dropped"


def test_random_mutator_run() -> None:
    outcomes = fuzz_hpack.random_run(3000, seed=1)
    assert sum(outcomes.values()) == 3000
    # the mutated inputs reach both sides of the decoder: accepted blocks and many different
    # refusals (otherwise the run would not be testing much)
    assert outcomes.get("accepted", 0) > 200, outcomes
    assert sum(1 for k in outcomes if k.startswith("error")) >= 8, outcomes


def test_check_rejects_a_broken_property(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself can fail: a decoder that leaks a non-HpackError is caught."""
    class Broken:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def decode(self, data: bytes) -> list:
            raise IndexError("leaked")

    monkeypatch.setattr(fuzz_hpack, "Decoder", Broken)
    with pytest.raises(IndexError):
        fuzz_hpack.check(fuzz_hpack.seeds()[0])


def test_bounded_fuzz_run(tmp_path: Path) -> None:
    fuzz_util.bounded_run(HARNESS, fuzz_hpack.random_run, tmp_path, runs=5000, fallback_runs=3000)
