import pytest
import torch

from stm.model import STM
from stm.model.backbone import TRUNK_CHANNELS

OFFICIAL_PARAMETER_COUNT = 38_925_570


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_semi_model_has_the_official_parameter_count():
    assert parameter_count(STM("semi")) == OFFICIAL_PARAMETER_COUNT


def test_interactive_model_adds_one_scribble_stem():
    # One more 1 -> 64 channel, bias-free 7x7 stem than the semi model (mask, positive, negative).
    assert parameter_count(STM("interactive")) == OFFICIAL_PARAMETER_COUNT + 64 * 7 * 7


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34"])
def test_small_backbones_follow_the_trunk_widths(backbone):
    model = STM(backbone=backbone).eval()
    c2, c3, c4 = TRUNK_CHANNELS[backbone]
    assert model.query_kv.key.in_channels == c4
    assert model.decoder.refine_8.skip_conv.in_channels == c3
    assert model.decoder.refine_4.skip_conv.in_channels == c2
    with torch.no_grad():
        query = model.encode_query(torch.rand(1, 3, 64, 80))
        key, value = model.encode_memory(torch.rand(1, 3, 64, 80), torch.rand(1, 2, 64, 80))
        assert model.segment(query, key, value).logits.shape == (1, 3, 64, 80)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return STM(backbone="resnet18").eval()


@pytest.mark.parametrize("objects", [1, 2, 3, 5])
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (97, 130)])
def test_shapes_and_probabilities_for_any_size_and_object_count(small_model, objects, size):
    frame = torch.rand(2, 3, *size)
    masks = torch.rand(2, objects, *size)
    with torch.no_grad():
        query = small_model.encode_query(frame)
        key, value = small_model.encode_memory(frame, masks)
        tokens = ((size[0] + 15) // 16) * ((size[1] + 15) // 16)
        assert key.shape == (2, objects, tokens, 128)
        assert value.shape == (2, objects, tokens, 512)
        seg = small_model.segment(query, torch.cat([key, key], 2), torch.cat([value, value], 2))
    assert seg.fg_logits.shape == (2, objects, *size)
    assert seg.logits.shape == (2, 1 + objects, *size)
    assert torch.allclose(seg.probs.sum(dim=1), torch.ones(2, *size), atol=1e-5)
    assert seg.object_probs.min() >= 0 and seg.object_probs.max() <= 1


def test_outputs_do_not_depend_on_the_other_items_in_the_batch(small_model):
    frames = torch.rand(2, 3, 48, 64)
    masks = torch.rand(2, 2, 48, 64)
    with torch.no_grad():
        both = small_model.segment(small_model.encode_query(frames), *small_model.encode_memory(frames, masks))
        first = small_model.segment(
            small_model.encode_query(frames[:1]), *small_model.encode_memory(frames[:1], masks[:1])
        )
    assert torch.allclose(both.probs[:1], first.probs, atol=1e-5)


def test_objects_are_segmented_independently_before_aggregation(small_model):
    # An object's own probability depends only on its own memory, not on which objects come with it
    # (the "other objects" map of the memory encoder is the same here by construction: masks sum to 1).
    frame = torch.rand(1, 3, 48, 64)
    masks = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        query = small_model.encode_query(frame)
        key, value = small_model.encode_memory(frame, masks)
        all_three = small_model.segment(query, key, value)
        second_only = small_model.segment(query, key[:, 1:2], value[:, 1:2])
    assert torch.allclose(all_three.fg_logits[:, 1], second_only.fg_logits[:, 0], atol=1e-4)


@pytest.mark.parametrize("per_pass", [1, 2])
def test_memory_encoding_in_object_chunks_equals_one_batch(small_model, per_pass):
    torch.manual_seed(1)
    frames, masks = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        key, value = small_model.encode_memory(frames, masks)
        chunked = small_model.encode_memory(frames, masks, objects_per_pass=per_pass)
    torch.testing.assert_close(chunked[0], key, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(chunked[1], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("per_pass", [1, 2])
def test_decoding_in_object_chunks_equals_one_batch(small_model, per_pass):
    torch.manual_seed(2)
    frames, masks = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        query = small_model.encode_query(frames)
        readout = small_model.read(query, *small_model.encode_memory(frames, masks))
        whole = small_model.decode(query, readout)
        chunked = small_model.decode(query, readout, objects_per_pass=per_pass)
    assert whole.shape == (2, 3, 40, 56)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)


def test_padding_objects_are_neither_encoded_nor_decoded(small_model):
    torch.manual_seed(3)
    frames, masks = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    valid = torch.tensor([[True, True, True], [True, False, False]])
    masks = masks * valid[:, :, None, None]  # padding objects have empty masks, as in a training batch
    sizes = []
    hook = small_model.memory_encoder.trunk.layer1.register_forward_hook(lambda m, i, o: sizes.append(o.shape[0]))
    with torch.no_grad():
        key, value = small_model.encode_memory(frames, masks)
        real_key, real_value = small_model.encode_memory(frames, masks, valid=valid)
        query = small_model.encode_query(frames)
        whole = small_model.segment(query, key, value, valid)
        real = small_model.segment(query, real_key, real_value, valid)
    hook.remove()
    assert sizes == [6, 4]  # 2 frames x 3 objects, then only the 4 real objects
    torch.testing.assert_close(real_key[valid], key[valid], rtol=1e-4, atol=1e-5)
    bias = small_model.memory_kv.key.bias  # padding objects: zero features, so their keys are the bias alone
    torch.testing.assert_close(real_key[~valid], bias.expand_as(real_key[~valid]))
    torch.testing.assert_close(real.fg_logits[valid], whole.fg_logits[valid], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(real.probs, whole.probs, rtol=1e-4, atol=1e-5)


def test_interactive_memory_needs_scribbles():
    model = STM("interactive", backbone="resnet18").eval()
    frame = torch.rand(1, 3, 32, 48)
    with torch.no_grad(), pytest.raises(ValueError, match="scribble"):
        model.encode_memory(frame, torch.rand(1, 2, 32, 48))
    with torch.no_grad():
        key, _ = model.encode_memory(frame, torch.rand(1, 2, 32, 48), torch.rand(1, 2, 2, 32, 48))
    assert key.shape == (1, 2, 6, 128)


def test_scribbles_change_the_interactive_memory():
    torch.manual_seed(0)
    model = STM("interactive", backbone="resnet18").eval()
    frame, masks = torch.rand(1, 3, 32, 48), torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        empty, _ = model.encode_memory(frame, masks, torch.zeros(1, 1, 2, 32, 48))
        scribbled, _ = model.encode_memory(frame, masks, torch.ones(1, 1, 2, 32, 48))
    assert not torch.allclose(empty, scribbled)


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    model = STM(backbone="resnet18").train()
    frames = torch.rand(2, 3, 3, 64, 64)
    masks = (torch.rand(2, 2, 64, 64) > 0.5).float()
    key, value = model.encode_memory(frames[:, 0], masks)
    seg = model.segment(model.encode_query(frames[:, 1]), key, value)
    key2, value2 = model.encode_memory(frames[:, 1], seg.probs[:, 1:])
    seg2 = model.segment(model.encode_query(frames[:, 2]), torch.cat([key, key2], 2), torch.cat([value, value2], 2))
    target = torch.randint(0, 3, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(seg.logits, target) + torch.nn.functional.cross_entropy(
        seg2.logits, target
    )
    loss.backward()
    without = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_a_fixed_batch_is_learned():
    torch.manual_seed(0)
    model = STM(backbone="resnet18").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = torch.rand(2, 2, 3, 64, 64)
    labels = torch.zeros(2, 64, 64, dtype=torch.long)
    labels[:, 16:48, 8:40] = 1
    first_masks = (labels == 1).float().unsqueeze(1)
    losses = []
    for _ in range(12):
        key, value = model.encode_memory(frames[:, 0], first_masks)
        seg = model.segment(model.encode_query(frames[:, 1]), key, value)
        loss = torch.nn.functional.cross_entropy(seg.logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="mode"):
        STM("fancy")
    with pytest.raises(ValueError, match="backbone"):
        STM(backbone="vgg16")
    with pytest.raises(ValueError, match="kernel"):
        STM(read_kernel="flash")


def test_segment_reads_each_group_of_objects_from_its_own_memory():
    """Objects that joined later read a shorter memory: segment takes one (key, value) per group."""
    torch.manual_seed(0)
    model = STM("semi", backbone="resnet18", decoder_channels=16).eval()
    frames, masks = torch.rand(3, 1, 3, 32, 48), torch.rand(3, 1, 3, 32, 48)
    with torch.no_grad():
        memory = [model.encode_memory(frames[t], masks[t]) for t in range(2)]
        key = torch.cat([k for k, _ in memory], 2)
        value = torch.cat([v for _, v in memory], 2)
        query = model.encode_query(frames[2])
        whole = model.segment(query, key, value)
        late = memory[1][0][:, 2:], memory[1][1][:, 2:]  # object 3 joined at frame 1
        grouped = model.segment(query, [key[:, :2], late[0]], [value[:, :2], late[1]])
        alone = model.segment(query, *late)
    torch.testing.assert_close(grouped.fg_logits[:, :2], whole.fg_logits[:, :2])
    torch.testing.assert_close(grouped.fg_logits[:, 2:], alone.fg_logits)
    assert not torch.allclose(grouped.fg_logits[:, 2:], whole.fg_logits[:, 2:])
    torch.testing.assert_close(grouped.probs.sum(1), torch.ones(1, 32, 48))
