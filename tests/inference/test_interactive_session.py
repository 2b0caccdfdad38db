"""InteractiveSession: memory from interacted frames, every frame re-segmented, queries encoded once."""

import numpy as np
import pytest
import torch

from stm.data.scribbles import correction_maps, first_round_maps
from stm.inference.interactive import InteractiveSession
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


def test_session_reuses_query_encodings_across_rounds(video):
    frames, truth = video
    model = Counting().eval()
    session = InteractiveSession(model, frames, num_objects=2, batch=2)
    rng = np.random.default_rng(0)
    labels = session.interact(2, torch.from_numpy(first_round_maps(truth[2], 2, rng)))
    assert labels.shape == (5, 48, 64) and labels.dtype == torch.uint8
    assert int(labels.max()) <= 2
    for frame in (0, 4, 2):  # a new frame, another, then the first one again
        maps = correction_maps(labels[frame].numpy(), truth[frame], 2, rng)
        labels = session.interact(frame, torch.from_numpy(maps))
    assert model.query_frames == 5  # each frame encoded once, across 4 rounds
    assert model.memory_calls == 4  # one memory frame (re-)encoded per interaction
    assert sorted(session.memory) == [0, 2, 4]  # frame 2 was refreshed, not added twice


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
