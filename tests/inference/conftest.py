import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny frames gain nothing from a second thread, and on a shared, busy machine the OpenMP
    threads of one process wait for each other (seen: 1.5 s instead of 0.04 s per step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
