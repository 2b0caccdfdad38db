"""InteractiveSession: memory from interacted frames, every frame re-segmented, query encodings kept within a
budget, frames given as a tensor or lazily."""

import numpy as np
import pytest
import torch

from stm.data.scribbles import first_round_maps
from stm.inference.interactive import InteractiveSession, feature_bytes
from stm.model.stm import STM


class Counting(STM):
    """STM that counts its encoder calls and the frames they encode."""

    def __init__(self):
        super().__init__(mode="interactive", backbone="resnet18")
        self.query_frames = 0
        self.memory_calls = 0

    def encode_query(self, frame):
        self.query_frames += frame.shape[0]
        return super().encode_query(frame)

    def encode_memory(self, frame, masks, scribbles=None, **options):
        self.memory_calls += 1
        return super().encode_memory(frame, masks, scribbles, **options)


@pytest.fixture
def video():
    torch.manual_seed(0)
    truth = np.zeros((5, 48, 64), dtype=np.uint8)
    truth[:, 8:30, 6:30] = 1
    truth[:, 20:44, 36:60] = 2
    return torch.rand(5, 3, 48, 64), truth


def play(session, truth, frames=(2, 0, 4, 2)):
    """Interactions on `frames` (the last one again at the end), each with ground-truth strokes."""
    rng = np.random.default_rng(0)
    labels = [session.interact(f, torch.from_numpy(first_round_maps(truth[f], 2, rng))) for f in frames]
    return labels


def test_session_reuses_query_encodings_across_rounds(video):
    frames, truth = video
    model = Counting().eval()
    session = InteractiveSession(model, frames, num_objects=2, batch=2)
    labels = play(session, truth)[-1]
    assert labels.shape == (5, 48, 64) and labels.dtype == torch.uint8
    assert int(labels.max()) <= 2
    assert model.query_frames == 5  # each frame encoded once, across 4 rounds (the default cache holds them all)
    assert model.memory_calls == 4  # one memory frame (re-)encoded per interaction
    assert sorted(session.memory) == [0, 2, 4]  # frame 2 was refreshed, not added twice


def test_the_query_cache_stays_within_its_budget_with_the_same_results(video):
    frames, truth = video
    model = Counting().eval()
    reference = play(InteractiveSession(model, frames, 2, batch=2), truth)
    one_batch = feature_bytes(model.encode_query(frames[:2]))
    for budget, kept_frames in ((0, 0), (one_batch, 2), (2 * one_batch, 4)):
        model.query_frames = 0
        session = InteractiveSession(model, frames, 2, batch=2, cache_bytes=budget)
        labels = play(session, truth)
        assert session.cached_bytes <= budget and session.cached_bytes == kept_frames // 2 * one_batch
        assert model.query_frames == kept_frames + 4 * (5 - kept_frames)  # the rest encoded in every round
        assert all(torch.equal(a, b) for a, b in zip(labels, reference, strict=True))


class LazyFrames:
    """Frames produced on demand, counting the reads (as a video file reader would decode them)."""

    def __init__(self, frames):
        self.frames, self.reads = frames, 0

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, index):
        self.reads += 1
        return self.frames[index].clone()


def test_frames_given_lazily_give_the_tensor_results(video):
    frames, truth = video
    model = STM("interactive", "resnet18").eval()
    reference = play(InteractiveSession(model, frames, 2, batch=2), truth)
    lazy = LazyFrames(frames)
    session = InteractiveSession(model, lazy, 2, batch=2, cache_bytes=0)
    assert all(torch.equal(a, b) for a, b in zip(play(session, truth), reference, strict=True))
    assert lazy.reads == 1 + 4 * (5 + 1)  # the size, then per round every frame and the scribbled one
    as_list = InteractiveSession(model, list(frames), 2, batch=2)
    assert all(torch.equal(a, b) for a, b in zip(play(as_list, truth), reference, strict=True))


class Recording(STM):
    """STM that records the masks and scribbles its memory encoder is given."""

    def __init__(self):
        super().__init__(mode="interactive", backbone="resnet18")
        self.inputs = []

    def encode_memory(self, frame, masks, scribbles=None, **options):
        self.inputs.append((masks.clone(), scribbles.clone()))
        return super().encode_memory(frame, masks, scribbles, **options)


def one_hot(labels, objects=2):
    return torch.stack([labels == k for k in range(1, objects + 1)]).float()[None]


def test_each_interaction_memorises_its_frame_with_the_current_mask_and_all_its_scribbles(video):
    frames, truth = video
    model = Recording().eval()
    session = InteractiveSession(model, frames, num_objects=2)
    first = torch.zeros(2, 2, 48, 64, dtype=torch.bool)
    first[0, 0, 10, 10] = True
    second = torch.zeros_like(first)
    second[1, 1, 30, 30] = True
    round1 = session.interact(1, first)
    round2 = session.interact(3, first)
    round3 = session.interact(1, second)
    masks, scribbles = zip(*model.inputs, strict=True)
    assert not masks[0].any()  # nothing predicted before the first interaction
    assert torch.equal(masks[1], one_hot(round1[3])) and masks[1].any()  # round 1's prediction of frame 3
    assert torch.equal(masks[2], one_hot(round2[1])) and masks[2].any()  # round 2's prediction of frame 1
    assert not torch.equal(masks[2], one_hot(round1[1]))  # (it changed between the rounds)
    assert torch.equal(scribbles[2][0].bool(), first | second)  # frame 1 keeps its first strokes too
    assert session.memory.keys() == {1, 3} and round3.shape == (5, 48, 64)


def test_batched_segmentation_matches_frame_by_frame(video):
    frames, truth = video
    model = STM("interactive", "resnet18").eval()
    maps = torch.from_numpy(first_round_maps(truth[0], 2, np.random.default_rng(0)))
    batched = InteractiveSession(model, frames, 2, batch=5).interact(0, maps)
    single = InteractiveSession(model, frames, 2, batch=1).interact(0, maps)
    assert (batched != single).float().mean() < 1e-3


def test_output_size_resizes_the_labels(video):
    frames, truth = video
    session = InteractiveSession(STM("interactive", "resnet18").eval(), frames, 2, output_size=(96, 128))
    labels = session.interact(0, torch.from_numpy(first_round_maps(truth[0], 2, np.random.default_rng(0))))
    assert labels.shape == (5, 96, 128)
    assert session.labels.shape == (5, 48, 64)


def test_session_refuses_semi_model_and_bad_shapes(video):
    frames, _ = video
    with pytest.raises(ValueError, match="interactive"):
        InteractiveSession(STM("semi", "resnet18"), frames, 2)
    session = InteractiveSession(STM("interactive", "resnet18").eval(), frames, 2)
    with pytest.raises(ValueError, match="shape"):
        session.interact(0, torch.zeros(1, 2, 48, 64, dtype=torch.bool))
    with pytest.raises(IndexError):
        session.interact(9, torch.zeros(2, 2, 48, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match="no frames"):
        InteractiveSession(STM("interactive", "resnet18").eval(), [], 2)
    mixed = InteractiveSession(STM("interactive", "resnet18").eval(), [frames[0], frames[1, :, :32]], 2)
    with pytest.raises(ValueError, match=r"frame 1 has shape \(3, 32, 64\)"):
        mixed.interact(0, torch.zeros(2, 2, 48, 64, dtype=torch.bool))
