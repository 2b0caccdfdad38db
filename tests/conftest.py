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
