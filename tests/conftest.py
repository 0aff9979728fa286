import gc
import warnings

import pytest

import engine


@pytest.fixture(autouse=True)
def _no_unclosed_loops():
    """Every test closes what it opens: an unclosed loop shows up as a ResourceWarning here."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)
              and "unclosed event loop" in str(w.message)]
    assert not leaked, [str(w.message) for w in leaked]


@pytest.fixture
def loop():
    """A fresh engine loop, closed after the test (mixin classes define their own)."""
    loop = engine.new_event_loop()
    yield loop
    if not loop.is_closed():
        loop.close()
