"""release_freed_memory gives freed heap pages back (glibc only)."""

import sys

import pytest
import torch

from stm.inference.heap import _malloc_trim, release_freed_memory


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or _malloc_trim() is None, reason="glibc only")
def test_freed_heap_blocks_leave_the_resident_set():
    # Freeing a 16 MB mmapped block raises glibc's mmap threshold: the 4 MB blocks after it come from
    # the heap, and freeing them (the last one kept, so the heap's top cannot shrink) keeps them resident.
    large = torch.ones(4 * 2**20)
    del large
    blocks = [torch.ones(2**20) for _ in range(24)]  # 24 x 4 MB, touched
    keep = blocks[-1]
    del blocks
    before = _rss_mib()
    assert release_freed_memory()
    assert before - _rss_mib() > 50, "the 92 MB freed in the heap should leave the resident set"
    assert keep.sum() == 2**20
