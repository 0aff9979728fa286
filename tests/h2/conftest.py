import pytest


@pytest.fixture(autouse=True)
def _no_unclosed_loops():
    """Overrides tests/conftest.py's per-test gc.collect() check for unclosed event loops:
    the IO-free HTTP/2 tests (HPACK, the frame core) never create a loop, and a full
    collection after each of their many small tests would dominate the run time."""
    yield
