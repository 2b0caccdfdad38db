import pytest


@pytest.fixture(autouse=True, scope="module")
def _tiny_tests_use_one_thread(one_thread):
    """Every test here runs on tiny frames (see `one_thread` in tests/conftest.py)."""
