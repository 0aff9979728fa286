"""The HTTP parser against the data files in tests/http/data (format: casefile.py).

Every case runs fed whole, byte by byte, in seeded random pieces and as a memoryview over a
bytearray: the events, the error and the final state must be the same every way."""
from __future__ import annotations

import random
from itertools import pairwise

import pytest
from casefile import DATA_DIR, Case, all_cases, load_cases, normalize

from engine._http import HttpParserError, Limits, RequestParser

CASES = all_cases()
MODES = ["whole", "bytewise", "split-1", "split-2", "split-3", "memoryview"]


def pieces(case: Case, mode: str) -> list[object]:
    data = case.data
    if mode == "whole":
        return [data]
    if mode == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    if mode == "memoryview":
        buf = bytearray(data)
        view = memoryview(buf)
        rng = random.Random(f"{case.name}:mv")
        cuts = sorted(rng.sample(range(1, len(data)), min(3, max(0, len(data) - 1))))
        bounds = [0, *cuts, len(data)]
        return [view[a:b] for a, b in pairwise(bounds)]
    rng = random.Random(f"{case.name}:{mode}")
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 9)
        out.append(data[i:i + n])
        i += n
    return out


def run(case: Case,
        feed: list[object]) -> tuple[RequestParser, list[tuple], HttpParserError | None]:
    parser = RequestParser(Limits(**case.limits)) if case.limits else RequestParser()
    events: list[tuple] = []
    error = None
    try:
        for piece in feed:
            parser.feed_data(piece)
            events += parser.events()
        if case.eof:
            parser.feed_eof()
    except HttpParserError as exc:
        error = exc
    events += parser.events()
    return parser, normalize(events), error


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, mode: str) -> None:
    parser, events, error = run(case, pieces(case, mode))
    assert events == case.expected, case.source
    if case.error is None:
        assert error is None, f"{case.source}: unexpected {error!r}"
    else:
        assert error is not None, f"{case.source}: expected error {case.error}"
        assert error.status_code == case.error, (case.source, error)
        # the parser stays failed: more input raises the same error again
        with pytest.raises(HttpParserError) as again:
            parser.feed_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert again.value.status_code == case.error
        assert parser.events() == []
    assert parser.upgrade_pending == (case.upgrade_remaining is not None), case.source
    if case.upgrade_remaining is not None:
        assert parser.take_remaining() == case.upgrade_remaining
    assert parser.closed == case.closed, case.source


def test_data_files_are_well_formed() -> None:
    files = sorted(DATA_DIR.glob("*.txt"))
    assert len(files) >= 4
    for path in files:
        cases = load_cases(path)
        assert cases, path
        for case in cases:
            assert case.data, case.source
            # a case states an outcome: events, an error, or both
            assert case.expected or case.error is not None, case.source
