import pytest


@pytest.fixture(autouse=True)
def _no_unclosed_loops():
    """Overrides tests/conftest.py's per-test gc.collect() check for unclosed event loops:
    the IO-free parser tests never create a loop, and a full collection after each of their
    ~1500 small tests would dominate the run time."""
    yield
