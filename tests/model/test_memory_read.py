import math

import pytest
import torch

import stm.model.memory_read as read_module
from stm.model.memory_read import CPU_AFFINITY_BYTES, CPU_QUERY_CHUNK, _chunk_size, memory_read


@pytest.fixture
def smallest_chunks(monkeypatch):
    """Chunks of CPU_QUERY_CHUNK query pixels whatever the memory length (test memories are short)."""
    monkeypatch.setattr(read_module, "CPU_AFFINITY_BYTES", 1)


def reference_read(query_key, memory_key, memory_value):
    """The paper's read for one object, written out pixel-set by pixel-set with explicit loops over objects."""
    outputs = []
    for obj in range(memory_key.shape[1]):
        affinity = memory_key[:, obj] @ query_key.transpose(1, 2) / math.sqrt(query_key.shape[-1])  # [B, L, hw]
        weights = torch.softmax(affinity, dim=1)  # over memory pixels
        outputs.append((memory_value[:, obj].transpose(1, 2) @ weights).transpose(1, 2))  # [B, hw, Cv]
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("objects,memory_frames", [(1, 1), (3, 4)])
def test_both_kernels_agree_with_the_paper_formula(objects, memory_frames):
    torch.manual_seed(0)
    hw = 7 * 9
    query_key = torch.randn(2, hw, 128)
    memory_key = torch.randn(2, objects, memory_frames * hw, 128)
    memory_value = torch.randn(2, objects, memory_frames * hw, 512)
    expected = reference_read(query_key, memory_key, memory_value)
    for kernel in ("sdpa", "bmm"):
        got = memory_read(query_key, memory_key, memory_value, kernel)
        assert got.shape == (2, objects, hw, 512)
        assert torch.allclose(got, expected, atol=1e-5), kernel


@pytest.mark.parametrize("kernel", ["sdpa", "bmm"])
def test_a_query_larger_than_the_cpu_chunk_reads_the_same(kernel, smallest_chunks):
    torch.manual_seed(2)
    hw = 2 * CPU_QUERY_CHUNK + 37  # three chunks, the last one partial
    query_key = torch.randn(2, hw, 128)
    memory_key, memory_value = torch.randn(2, 3, 300, 128), torch.randn(2, 3, 300, 512)
    with torch.inference_mode():
        got = memory_read(query_key, memory_key, memory_value, kernel)
    assert got.shape == (2, 3, hw, 512)
    assert torch.allclose(got, reference_read(query_key, memory_key, memory_value), atol=1e-5)


def test_chunked_bf16_read_under_autocast_stays_close_to_float32(smallest_chunks):
    # The session reads bf16 memory under autocast; the chunked products run in bf16 (softmax
    # accumulated in float32), so the read-out stays within bf16 rounding of the float32 read.
    torch.manual_seed(3)
    hw = CPU_QUERY_CHUNK + 50
    query_key = torch.randn(1, hw, 128)
    memory_key, memory_value = torch.randn(1, 2, 400, 128), torch.randn(1, 2, 400, 512)
    expected = reference_read(query_key, memory_key, memory_value)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = memory_read(query_key.bfloat16(), memory_key.bfloat16(), memory_value.bfloat16())
    assert got.dtype == torch.bfloat16
    assert (got.float() - expected).abs().max() < 0.05 * expected.abs().max()


def test_gradients_flow_through_the_cpu_read(smallest_chunks):
    # With gradients the CPU reads the whole affinity at once (autograd keeps it anyway).
    torch.manual_seed(4)
    hw = CPU_QUERY_CHUNK + 10
    query_key = torch.randn(1, hw, 128, requires_grad=True)
    memory_key = torch.randn(1, 1, 50, 128, requires_grad=True)
    memory_value = torch.randn(1, 1, 50, 512, requires_grad=True)
    memory_read(query_key, memory_key, memory_value).square().sum().backward()
    grads = [t.grad.clone() for t in (query_key, memory_key, memory_value)]
    for t in (query_key, memory_key, memory_value):
        t.grad = None
    reference_read(query_key, memory_key, memory_value).square().sum().backward()
    for got, t in zip(grads, (query_key, memory_key, memory_value), strict=True):
        assert torch.allclose(got, t.grad, rtol=1e-4, atol=1e-4)


def test_chunks_keep_the_affinity_bounded_at_480p_with_7_memory_frames():
    tokens = 7 * 30 * 54  # 480x854 padded to 480x864, stride 16
    for dtype, expected in ((torch.float32, 128), (torch.bfloat16, 256)):
        key, value = torch.empty(1, 2, tokens, 128, dtype=dtype), torch.empty(1, 2, tokens, 512, dtype=dtype)
        chunk = _chunk_size(key, value)
        assert chunk == expected
        assert 2 * chunk * tokens * key.itemsize <= CPU_AFFINITY_BYTES
    short = torch.empty(1, 2, 100, 128)
    assert _chunk_size(short, torch.empty(1, 2, 100, 512)) > 1620  # a short memory reads in one go


def test_kernels_agree_with_each_other_to_1e_5():
    torch.manual_seed(1)
    query_key = torch.randn(1, 120, 128) * 2
    memory_key = torch.randn(1, 2, 600, 128) * 2
    memory_value = torch.randn(1, 2, 600, 512)
    sdpa = memory_read(query_key, memory_key, memory_value, "sdpa")
    bmm = memory_read(query_key, memory_key, memory_value, "bmm")
    assert (sdpa - bmm).abs().max() < 1e-5


def test_a_memory_pixel_identical_to_the_query_dominates():
    # With a key far more similar than any other, the read returns that pixel's value.
    query_key = torch.zeros(1, 1, 128)
    query_key[0, 0, 0] = 10.0
    memory_key = torch.zeros(1, 1, 5, 128)
    memory_key[0, 0, 3, 0] = 10.0
    memory_value = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 1, 5, 512)
    out = memory_read(query_key, memory_key, memory_value, "bmm")
    assert torch.allclose(out, torch.full_like(out, 3.0), atol=1e-3)


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel"):
        memory_read(torch.zeros(1, 1, 128), torch.zeros(1, 1, 1, 128), torch.zeros(1, 1, 1, 512), "magic")
