"""engine.bench: the benchmark harness (`engine bench`, `engine dashboard`) and the results schema.

Not part of the event loop. `results` and `suites` are standard library only; `report` needs
pyperf + numpy (the ``perf`` extra) and `dashboard` needs matplotlib (the ``dashboard`` extra).
Nothing here is imported by ``import engine``.
"""
