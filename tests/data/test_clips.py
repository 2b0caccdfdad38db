import numpy as np
import torch

from stm.data.clips import BadSample, Clip, ClipDataset, ClipSampler, collate_clips, pick_objects, renumber
from stm.errors import StmError


def test_sampler_batches_depend_only_on_seed_rank_and_step():
    def make(start):
        return ClipSampler([5, 50], [1, 3], 4, lambda step: step // 10, seed=7, rank=0, start=start, stop=30)

    full = list(make(0))
    assert len(full) == 30 and all(len(batch) == 4 for batch in full)
    assert list(make(12)) == full[12:]  # a resumed run sees the same batches
    other_rank = ClipSampler([5, 50], [1, 3], 4, lambda s: 0, seed=7, rank=1, stop=30)
    assert [r.index for r in other_rank.batch(3)] != [r.index for r in full[3]]
    assert full[25][0].max_skip == 2
    share = np.mean([request.source for batch in full for request in batch])
    assert 0.55 < share < 0.95  # weights 1:3


def test_collate_pads_objects_and_drops_bad_samples():
    def clip(objects):
        return Clip(torch.zeros(3, 3, 8, 8), torch.full((3, 8, 8), objects, dtype=torch.uint8), objects, "c")

    batch = collate_clips([clip(1), BadSample("x.jpg: unreadable"), clip(3)])
    assert len(batch) == 2 and batch.bad == ["x.jpg: unreadable"]
    assert batch.valid.tolist() == [[True, False, False], [True, True, True]]
    masks = batch.masks()
    assert masks.shape == (2, 3, 3, 8, 8) and masks[1, 0, 2].all() and not masks[0, 0, 1:].any()
    assert len(collate_clips([BadSample("y")])) == 0


def test_dataset_turns_unreadable_samples_into_bad_samples():
    class Broken:
        name = "broken"

        def __len__(self):
            return 1

        def clip(self, index, rng, max_skip):
            raise StmError("frame.jpg: unreadable image")

    sample = ClipDataset([Broken()])[ClipSampler([1], [1], 1, lambda s: 0).batch(0)[0]]
    assert isinstance(sample, BadSample) and "frame.jpg" in sample.reason


def test_pick_objects_and_renumber():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[0:5, 0:5], labels[6:8, 6:8], labels[9, 9] = 4, 7, 9
    chosen = pick_objects(np.random.default_rng(0), labels, max_objects=3, min_pixels=4)
    assert chosen == [4, 7]  # id 9 is too small
    assert set(np.unique(renumber(labels, chosen))) == {0, 1, 2}


def test_void_is_never_an_object_and_stays_void_for_the_loss():
    labels = np.full((10, 10), 255, dtype=np.uint8)  # mostly void: the largest "id" of all
    labels[0:4, 0:4], labels[6:9, 6:9] = 3, 5
    for seed in range(20):
        chosen = pick_objects(np.random.default_rng(seed), labels, max_objects=3, min_pixels=4)
        assert chosen == [3, 5]
    renumbered = renumber(labels, [5])
    assert renumbered[7, 7] == 1 and renumbered[1, 1] == 0  # not chosen: background
    assert renumbered[5, 0] == 255  # void stays void (the loss ignores it)
