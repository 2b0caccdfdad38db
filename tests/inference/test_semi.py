import copy

import numpy as np
import pytest
import torch

from stm import STM
from stm.config import LossConfig
from stm.data.clips import Clip, collate_clips
from stm.data.synthetic import SyntheticSpec, render_video
from stm.inference.semi import SemiSupervisedSession, propagate
from stm.train.losses import SegmentationLoss
from stm.train.steps import SemiClipStep


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return STM("semi", "resnet18").eval()


def _video(frames=8, height=64, width=96, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(frames)]


def _labels(height=64, width=96, ids=(3, 7)):
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[8:30, 10:40] = ids[0]
    if len(ids) > 1:
        labels[30:60, 50:90] = ids[1]
    return labels


def reference_probs(model, frames, first_labels, mem_every):
    """The official algorithm written plainly: fp32, contiguous tensors, whole memory concatenated
    every frame, every memory frame encoded from scratch."""
    ids = sorted(int(i) for i in np.unique(first_labels) if i)
    x = [torch.from_numpy(f).permute(2, 0, 1)[None].float().contiguous() / 255 for f in frames]
    target = torch.from_numpy(first_labels.astype(np.int64))
    probs = torch.stack([target == 0] + [target == i for i in ids])[None].float()
    outputs, keys, values = [probs[0]], None, None
    with torch.no_grad():
        for t in range(1, len(frames)):
            prev_key, prev_value = model.encode_memory(x[t - 1], probs[:, 1:])
            this_key = prev_key if keys is None else torch.cat([keys, prev_key], dim=2)
            this_value = prev_value if values is None else torch.cat([values, prev_value], dim=2)
            probs = model.segment(model.encode_query(x[t]), this_key, this_value).probs
            outputs.append(probs[0])
            if (t - 1) % mem_every == 0:
                keys, values = this_key, this_value
    return outputs


def test_optimised_session_matches_the_plain_reference_in_fp32(model):
    frames, labels = _video(9), _labels()
    expected = reference_probs(model, frames, labels, mem_every=3)
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    session = SemiSupervisedSession(fast, mem_every=3, channels_last=True)
    for t, frame in enumerate(frames):
        result = session.step(frame, labels if t == 0 else None)
        assert result.ids == [3, 7]
        torch.testing.assert_close(result.probs, expected[t], atol=1e-4, rtol=0)
        ids = np.array([0, 3, 7])[expected[t].argmax(0).numpy()]
        assert (result.labels == ids).mean() > 0.999


def test_the_session_segments_through_the_networks_segment(model):
    calls = []

    class Spy(STM):
        def segment(self, *args, **kwargs):
            calls.append(len(args[1]) if isinstance(args[1], list) else 1)
            return super().segment(*args, **kwargs)

    spy = Spy("semi", "resnet18")
    spy.load_state_dict(model.state_dict())
    session = SemiSupervisedSession(spy.eval(), mem_every=2)
    frames, labels = _video(4), _labels(ids=(3,))
    for t, frame in enumerate(frames):
        late = _labels(ids=(3, 7)) if t == 2 else None
        session.step(frame, labels if t == 0 else late)
    assert calls == [1, 1, 2]  # frames 1..3; object 7 joins at frame 2 and reads its own, shorter memory


def test_memory_schedule_keeps_first_every_nth_and_previous(model):
    session = SemiSupervisedSession(model, mem_every=3)
    for t, frame in enumerate(_video(10)):
        session.step(frame, _labels() if t == 0 else None)
        if t >= 1:
            expected = sorted({f for f in range(t - 1) if f % 3 == 0} | {t - 1})
            assert sorted(session.bank.frames()) == expected


def test_memory_cap_keeps_first_and_newest_in_bounded_buffers(model):
    session = SemiSupervisedSession(model, mem_every=2, max_memory_frames=3)
    shapes = set()
    for t, frame in enumerate(_video(12)):
        session.step(frame, _labels() if t == 0 else None)
        if t >= 2:
            frames = session.bank.frames()
            newest_kept = max(f for f in range(1, t) if f % 2 == 0) if t > 2 else None
            assert len(frames) <= 3 and 0 in frames and t - 1 in frames
            if newest_kept:
                assert newest_kept in frames
            shapes.add(tuple(session.bank._key.shape))
    assert len(shapes) == 1 and shapes.pop()[2] == 3 * (64 // 16) * (96 // 16)


def test_late_and_non_contiguous_objects_join_at_their_first_frame(model):
    frames = _video(7)
    late = np.zeros((64, 96), dtype=np.uint8)
    late[40:60, 5:30] = 12
    session = SemiSupervisedSession(model, mem_every=5)
    empty = session.step(frames[0])
    assert empty.ids == [] and not empty.labels.any() and empty.probs.shape == (1, 64, 96)
    first = session.step(frames[1], _labels(ids=(5,)))
    assert first.ids == [5] and np.array_equal(first.labels, _labels(ids=(5,)))
    session.step(frames[2])
    joined = session.step(frames[3], late)
    assert joined.ids == [5, 12]
    assert np.all(joined.labels[late == 12] == 12)
    for frame in frames[4:]:
        result = session.step(frame)
        assert result.probs.shape == (3, 64, 96)
        torch.testing.assert_close(result.probs.sum(0), torch.ones(64, 96))
        assert set(np.unique(result.labels)) <= {0, 5, 12}
    groups = session.bank.groups()
    tokens = (64 // 16) * (96 // 16)
    assert [(g.start, g.stop) for g in groups] == [(0, 1), (1, 2)]
    assert groups[0].key.shape[2] == len(session.bank.frames()) * tokens
    assert groups[1].key.shape[2] == len([f for f in session.bank.frames() if f >= 3]) * tokens


def test_propagate_yields_one_id_map_per_frame(model):
    frames, labels = _video(5), _labels()
    outputs = list(propagate(model, iter(frames), labels, mem_every=2))
    assert len(outputs) == 5 and all(o.shape == (64, 96) for o in outputs)
    assert np.array_equal(outputs[0], labels)
    assert not torch.is_inference_mode_enabled()


@pytest.fixture(scope="module")
def trained():
    """A tiny model fitted to one generated 48x64 video of 2 objects (30 Adam steps of the semi step on
    the whole clip, about 5 s): confident where random weights are not."""
    frames, labels = render_video(np.random.default_rng(0), SyntheticSpec(48, 64, 4, 4, 2, 2))
    torch.manual_seed(0)
    net = STM("semi", "resnet18", decoder_channels=16)
    clip = Clip(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(labels), 2)
    batch, step = collate_clips([clip]), SemiClipStep(net, SegmentationLoss(LossConfig()))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for index in range(30):
        optimizer.zero_grad()
        step(batch, index).loss.backward()
        optimizer.step()
    return net.eval(), frames, labels


def test_amp_stays_within_its_tolerance_of_fp32_on_a_trained_model(trained):
    """bf16 autocast (eval_semi --amp on the CPU) against fp32 on the propagated frames: at least 99% of
    the pixels labelled alike, mean probability difference at most 2e-3, pixel accuracy within 0.01
    (measured on an AMD EPYC Zen 4 with native bf16: 99.92%, 6.8e-4, 1e-4)."""
    net, frames, labels = trained
    results = {}
    for amp in (False, True):
        session = SemiSupervisedSession(net, mem_every=5, amp=amp)
        results[amp] = torch.stack([session.step(f, labels[0] if t == 0 else None).probs for t, f in enumerate(frames)])
        assert session.bank._key.dtype == (torch.bfloat16 if amp else torch.float32)  # autocast really on / off
    fp32, amp = results[False], results[True]
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp.sum(1), torch.ones(4, 48, 64))
    accuracy = [float((p.argmax(1).numpy() == labels)[1:].mean()) for p in (fp32, amp)]
    assert accuracy[0] > 0.9  # trained: the comparison is between confident predictions
    assert float((fp32.argmax(1) == amp.argmax(1))[1:].float().mean()) >= 0.99
    assert float((fp32 - amp)[1:].abs().mean()) <= 2e-3
    assert abs(accuracy[0] - accuracy[1]) <= 0.01


def test_a_listed_object_absent_from_given_labels_is_absent_from_that_frame(model):
    frames, labels = _video(4), _labels()
    session = SemiSupervisedSession(model)
    session.step(frames[0], labels)
    only_three = np.where(labels == 3, 3, 0).astype(np.uint8)
    result = session.step(frames[1], only_three, ids=[3, 7])
    assert result.ids == [3, 7] and not (result.labels == 7).any()
    assert float(result.probs[2].max()) == 0.0


def test_remembered_frames_are_protected_memory_without_a_step(model):
    frames, labels = _video(3), _labels()
    session = SemiSupervisedSession(model, max_memory_frames=2)
    session.remember(frames[0], labels)
    assert session.frame_index == 0 and session.bank.frames() == [-1] and session.ids == [3, 7]
    for frame in frames[1:]:
        result = session.step(frame)  # no labels given: the objects come from the remembered frame
    assert result.ids == [3, 7] and -1 in session.bank.frames()


def test_a_working_size_answers_at_the_frames_size(model):
    frames, labels = _video(4), _labels()
    session = SemiSupervisedSession(model, size=32)
    results = [session.step(frame, labels if t == 0 else None) for t, frame in enumerate(frames)]
    assert all(r.labels.shape == (64, 96) and r.probs.shape == (3, 64, 96) for r in results)
    np.testing.assert_array_equal(results[0].labels, labels)
    native = SemiSupervisedSession(model, size=64)  # 64 is these frames' short side: nothing is resized
    plain = SemiSupervisedSession(model)
    for t, frame in enumerate(frames):
        given = labels if t == 0 else None
        torch.testing.assert_close(native.step(frame, given).probs, plain.step(frame, given).probs)
