"""What the fuzz harnesses share (tests/http/fuzz_parser.py, tests/h2/fuzz_hpack.py,
tests/h2/fuzz_h2.py): a byte-level mutator, the seeded random run that stands in for a
coverage-guided fuzzer where atheris is not installed, the harness's command line (atheris or
``--random N``), and the bounded CI run of a harness (tests/*/test_*_fuzz.py).

Each harness brings its own ``check(data) -> outcome label`` (raising on a broken property),
its seeds and, where its format has them, the byte strings worth inserting."""
from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

MAX_INPUT = 8192


def mutate(rng: random.Random, data: bytes, pool: Sequence[bytes],
           interesting: Sequence[bytes], replacements: bytes) -> bytes:
    """1-4 random edits of data: insert, delete, flip a bit, insert an interesting string,
    repeat a stretch, continue with the tail of another pool member, replace a byte by one of
    ``replacements``. At most MAX_INPUT bytes come back."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        op = rng.randrange(7)
        pos = rng.randint(0, len(buf))
        if op == 0:
            buf[pos:pos] = bytes([rng.randrange(256)])
        elif op == 1 and buf:
            del buf[pos:pos + rng.randint(1, 8)]
        elif op == 2 and pos < len(buf):
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 3:
            buf[pos:pos] = rng.choice(interesting)
        elif op == 4 and pos < len(buf):
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif op == 5:
            other = rng.choice(pool)
            a = rng.randint(0, len(other))
            buf[pos:] = other[a:]
        elif pos < len(buf):
            buf[pos] = rng.choice(replacements)
    return bytes(buf[:MAX_INPUT])


def evolve(check: Callable[[bytes], str], seeds: list[bytes],
           mutator: Callable[[random.Random, bytes, list[bytes]], bytes],
           iterations: int, seed: int, keep: str = "accepted") -> dict[str, int]:
    """``check`` on ``iterations`` mutations of the seeds; returns the count of each outcome.
    Some inputs whose outcome is ``keep`` join the pool as new seeds (a poor man's coverage
    guidance: variants that got through are the ones worth mutating further)."""
    rng = random.Random(seed)
    pool = list(seeds)
    outcomes: dict[str, int] = {}
    for _ in range(iterations):
        data = mutator(rng, rng.choice(pool), pool)
        label = check(data)
        outcomes[label] = outcomes.get(label, 0) + 1
        if label == keep and len(pool) < 2000 and rng.random() < 0.05:
            pool.append(data)
    return outcomes


def main(argv: list[str], random_run: Callable[[int, int], dict[str, int]],
         one_input: Callable[[bytes], object], corpus_seeds: Callable[[], list[bytes]]) -> int:
    """A harness's command line: ``--random N [--seed S]`` runs random_run and prints the
    outcomes; otherwise atheris fuzzes one_input with libFuzzer's options, an empty corpus
    directory first filled with corpus_seeds()."""
    if "--random" in argv:
        n = int(argv[argv.index("--random") + 1])
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1
        outcomes = random_run(n, seed)
        print(f"{n} inputs checked:")
        for label, count in sorted(outcomes.items()):
            print(f"  {count:7d}  {label}")
        return 0
    import atheris  # noqa: PLC0415

    for d in (a for a in argv[1:] if not a.startswith("-")):
        path = Path(d)
        path.mkdir(parents=True, exist_ok=True)
        if not any(path.iterdir()):
            for i, s in enumerate(corpus_seeds()):
                (path / f"seed-{i:04d}").write_bytes(s)

    def test_one_input(data: bytes) -> None:
        one_input(data)

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


def bounded_run(harness: Path, random_run: Callable[[int, int], dict[str, int]],
                tmp_path: Path, runs: int, fallback_runs: int) -> None:
    """The CI run of a harness: atheris for ``runs`` inputs (libFuzzer must report them all
    done and leave a corpus) where it is importable, else the random mutator on
    ``fallback_runs`` (seed 2); it never passes without having checked inputs."""
    if importlib.util.find_spec("atheris") is None:
        outcomes = random_run(fallback_runs, 2)
        assert sum(outcomes.values()) == fallback_runs
        return
    proc = subprocess.run(
        [sys.executable, str(harness), f"-runs={runs}", "-seed=1", "-max_len=2048",
         str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Done {runs} runs" in proc.stderr, proc.stderr[-3000:]
    assert any((tmp_path / "corpus").iterdir())
