"""Shared test settings: small thread counts and the optional real data beside the project."""

from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip when this checkout has none beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tests on tiny frames (its module-scoped fixtures included, when
    requested by an autouse fixture or `pytestmark = pytest.mark.usefixtures("one_thread")`). Tiny frames
    gain nothing from a second thread, and on a shared, busy machine the OpenMP threads of one process
    wait for each other (seen: 1.5 s instead of 0.04 s; a fixture training a tiny model: 100 s, not 7)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
