"""VideoPredictor: equal to eval_semi, backward = forward on the reversed video, corrections rewrite only
downstream frames, objects removed, the working size, recorded sizes, interactive mode, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stm import STM, VideoPredictor
from stm.data.io import read_mask
from stm.data.synthetic import SyntheticSpec, render_video, write_davis_sequence
from stm.errors import StmError
from stm.evaluation.semi_eval import EvalOptions, evaluate
from stm.inference.interactive import InteractiveSession
from stm.inference.semi import SemiSupervisedSession, frame_tensor
from stm.inference.working_size import resize
from stm.model.checkpoint import save_checkpoint

SPEC = SyntheticSpec(height=64, width=96, min_frames=10, max_frames=10, min_objects=2, max_objects=2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return STM("semi", "resnet18", decoder_channels=32).eval()


@pytest.fixture(scope="module")
def clip():
    return render_video(np.random.default_rng(0), SPEC)  # frames [T, H, W, 3], labels [T, H, W]


def all_labels(video):
    return np.stack([video.labels(i) for i in range(len(video))])


@pytest.mark.parametrize(
    ("size", "amp"), [(None, False), (32, False), (32, "bf16")], ids=["native", "recorded-32", "recorded-32-bf16"]
)
def test_forward_propagation_equals_eval_semi(model, clip, tmp_path, size, amp):
    # Both build the model the same way (BatchNorm folded, channels-last, bf16 weights under amp).
    frames, labels = clip
    write_davis_sequence(tmp_path / "davis", "seq", frames, labels)
    weights = tmp_path / "model.pth"
    save_checkpoint(weights, model, size=size)  # a checkpoint that records (or not) its training size
    options = EvalOptions(root=tmp_path / "davis", output=tmp_path / "out", weights=weights, sequences=["seq"], amp=amp)
    evaluate(options)
    predictor = VideoPredictor.from_weights(weights, amp=amp)
    assert predictor.size == size
    video = predictor.open(tmp_path / "davis" / "JPEGImages" / "480p" / "seq")
    video.add_mask(0, read_mask(tmp_path / "davis" / "Annotations" / "480p" / "seq" / "00000.png"))
    results = list(video.propagate())
    assert [r.index for r in results] == list(range(10))
    assert [(r.done, r.total) for r in results] == [(i, 10) for i in range(1, 11)]
    written = np.stack([read_mask(tmp_path / "out" / "seq" / f"{i:05d}.png") for i in range(10)])
    np.testing.assert_array_equal(all_labels(video), written)


def test_backward_equals_forward_on_the_reversed_video(model, clip):
    frames, labels = clip
    forward = VideoPredictor(model).open(list(frames[::-1]))
    backward = VideoPredictor(model).open(list(frames))
    for video, given in ((forward, (0, 4)), (backward, (9, 5))):  # the same frames, counted from either end
        for index in given:
            video.add_mask(index, labels[9 - index] if video is forward else labels[index])
    assert [r.index for r in backward.propagate(reverse=True)] == list(range(9, -1, -1))
    list(forward.propagate())
    np.testing.assert_array_equal(all_labels(backward), all_labels(forward)[::-1])


def test_a_correction_rewrites_only_the_frames_after_it(model, clip):
    frames, labels = clip
    video = VideoPredictor(model).open(list(frames))
    video.add_mask(0, labels[0])
    list(video.propagate())
    before = all_labels(video)
    corrected = labels[5].copy()
    corrected[:, :20] = 0  # a different mask than the prediction
    video.add_mask(5, corrected)
    assert video.annotated == [0, 5]
    assert [r.index for r in video.propagate(start=5)] == list(range(5, 10))
    after = all_labels(video)
    np.testing.assert_array_equal(after[:5], before[:5])
    np.testing.assert_array_equal(after[5], corrected)
    assert (after[6:] != before[6:]).any()
    forward = after.copy()
    assert [r.index for r in video.propagate(start=5, reverse=True)] == [5, 4, 3, 2, 1, 0]
    backward = all_labels(video)
    np.testing.assert_array_equal(backward[5:], forward[5:])  # frames after 5 untouched
    np.testing.assert_array_equal(backward[0], labels[0])  # hand-given frames keep their masks


def test_a_correction_keeps_the_earlier_annotations_in_memory(model, clip):
    frames, labels = clip
    video = VideoPredictor(model).open(list(frames))
    video.add_mask(0, labels[0])
    video.add_mask(5, labels[5])
    results = [r.probs for r in video.propagate(start=5)]
    with_first, alone = SemiSupervisedSession(model), SemiSupervisedSession(model)
    with_first.remember(frames[0], labels[0])  # frame 0 was annotated by hand: it stays in memory
    for session in (with_first, alone):
        session.expected = [session.step(frames[t], labels[5] if t == 5 else None).probs for t in range(5, 10)]
    for got, expected in zip(results, with_first.expected, strict=True):
        torch.testing.assert_close(got, expected)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(results[1:], alone.expected[1:], strict=True))


def test_stopping_a_propagation_leaves_every_frame_whole(model, clip):
    frames, labels = clip
    video = VideoPredictor(model).open(list(frames))
    video.add_mask(0, labels[0])
    run = video.propagate()
    done = [next(run) for _ in range(4)]
    run.close()  # the consumer cancels
    assert [video.segmented(i) for i in range(10)] == [True] * 4 + [False] * 6
    for result in done:
        np.testing.assert_array_equal(video.labels(result.index), result.labels)


def test_objects_may_join_later_and_be_removed(model, clip):
    frames, labels = clip
    video = VideoPredictor(model).open(list(frames))
    video.add_mask(0, np.where(labels[0] == 1, 1, 0))
    video.add_mask(3, np.where(labels[3] == 2, 7, 0))  # object 7 appears at frame 3 (non-contiguous id)
    results = list(video.propagate())
    assert video.objects == [1, 7] and results[0].ids == [1] and results[-1].ids == [1, 7]
    assert results[-1].probs.shape == (3, 64, 96)
    assert not (all_labels(video)[:3] == 7).any()
    video.remove_object(7)
    assert video.objects == [1] and video.annotated == [0]  # frame 3's only object is gone
    assert not (all_labels(video) == 7).any()
    assert all(7 not in r.ids for r in video.propagate())
    with pytest.raises(StmError, match="no object 7"):
        video.remove_object(7)


def test_a_mask_speaks_for_the_objects_it_lists(model, clip):
    frames, labels = clip
    video = VideoPredictor(model).open(list(frames))
    video.add_mask(0, labels[0])
    list(video.propagate())
    only_one = np.where(labels[6] == 1, 1, 0)
    video.add_mask(6, only_one, objects=[1, 2])  # object 2 erased by hand on frame 6
    np.testing.assert_array_equal(video.labels(6), only_one)
    list(video.propagate(start=0))
    np.testing.assert_array_equal(video.labels(6), only_one)  # and it stays erased
    video.add_mask(6, only_one)  # speaks for object 1 only: object 2 stays predicted there
    list(video.propagate(start=0))
    assert (video.labels(6) == 2).any()


class ShapeSpy(STM):
    def __init__(self):
        super().__init__("semi", "resnet18", decoder_channels=32)
        self.query_sizes = set()

    def encode_query(self, frame):
        self.query_sizes.add(tuple(frame.shape[-2:]))
        return super().encode_query(frame)


def test_the_working_size_runs_the_network_small_and_answers_at_the_video_size(clip):
    frames, labels = clip
    torch.manual_seed(0)
    spy = ShapeSpy().eval()
    video = VideoPredictor(spy, size=32).open(list(frames))
    video.add_mask(0, labels[0])
    results = list(video.propagate())
    assert spy.query_sizes == {(32, 48)}
    assert all(r.labels.shape == (64, 96) and r.probs.shape == (3, 64, 96) for r in results)
    np.testing.assert_array_equal(results[0].labels, labels[0])  # the given mask, not a resized copy
    torch.testing.assert_close(results[5].probs.sum(0), torch.ones(64, 96))


def test_recorded_sizes_and_their_default(model, tmp_path):
    weights = tmp_path / "a.pth"
    save_checkpoint(weights, model, config={"data": {"size": [48, 80]}})  # written before sizes were recorded
    assert VideoPredictor.from_weights(weights).size == 48
    save_checkpoint(weights, model, config={"model": {"size": 40}, "data": {"size": [48, 80]}})
    assert VideoPredictor.from_weights(weights).size == 40
    save_checkpoint(weights, model, size=24, config={"data": {"size": [48, 80]}})
    assert VideoPredictor.from_weights(weights).size == 24
    assert VideoPredictor.from_weights(weights, size="native").size is None
    assert VideoPredictor.from_weights(weights, size=64).size == 64
    save_checkpoint(weights, model)  # no record: native, like the official weights
    assert VideoPredictor.from_weights(weights).size is None
    with pytest.raises(StmError, match="size 8"):
        VideoPredictor.from_weights(weights, size=8)


@pytest.fixture(scope="module")
def interactive_model():
    torch.manual_seed(1)
    return STM("interactive", "resnet18", decoder_channels=32).eval()


def test_scribbles_resegment_every_frame_as_the_interactive_session_does(interactive_model, clip):
    frames, labels = clip
    predictor = VideoPredictor(interactive_model, size=32, thickness=1)
    video = predictor.open(list(frames))
    positive = np.zeros((64, 96), dtype=bool)
    positive[20:22, 10:60] = True
    negative = np.zeros_like(positive)
    negative[50:52, 10:80] = True
    video.add_scribbles(4, 3, positive, negative)
    video.add_scribbles(7, 3, None, positive)
    assert video.objects == [3] and video.annotated == [4, 7]
    assert all(video.segmented(i) for i in range(10))
    # The same two interactions straight on InteractiveSession, at the working size.
    working = torch.cat([resize(frame_tensor(f, torch.device("cpu")), (32, 48)) for f in frames])
    session = InteractiveSession(interactive_model, working, 1, output_size=(64, 96))
    small = lambda m: (resize(torch.from_numpy(m.astype(np.float32))[None, None], (32, 48)) > 0)[0, 0]  # noqa: E731
    session.interact(4, torch.stack([torch.stack([small(positive), small(negative)])]))
    expected = session.interact(7, torch.stack([torch.stack([torch.zeros(32, 48, dtype=torch.bool), small(positive)])]))
    np.testing.assert_array_equal(all_labels(video), np.where(expected.numpy() == 1, 3, 0))
    video.add_scribbles(4, 5, negative)  # a second object: the session is rebuilt and replayed
    assert video.objects == [3, 5]
    assert set(np.unique(all_labels(video))) <= {0, 3, 5}
    video.remove_object(3)
    assert video.objects == [5] and video.annotated == [4]


def test_bad_input_is_a_clear_error(model, interactive_model, clip, tmp_path):
    frames, labels = clip
    video = VideoPredictor(model).open(list(frames))
    with pytest.raises(StmError, match="no mask given yet"):
        video.propagate()
    with pytest.raises(StmError, match="mask is 48x32 but the video is 96x64"):
        video.add_mask(0, labels[0][:32, :48])
    with pytest.raises(StmError, match="mask has no object"):
        video.add_mask(0, np.zeros((64, 96), dtype=np.uint8))
    with pytest.raises(StmError, match="mask has no object"):
        video.add_mask(0, np.full((64, 96), 255, dtype=np.uint8))  # void only
    with pytest.raises(StmError, match=r"frame 10 is beyond the video \(10 frames"):
        video.add_mask(10, labels[0])
    with pytest.raises(StmError, match="add_scribbles needs a interactive|add_scribbles needs an? interactive"):
        video.add_scribbles(0, 1, labels[0] > 0)
    video.add_mask(0, labels[0])
    with pytest.raises(StmError, match="frame 4 has no mask to propagate from"):
        video.propagate(start=4)
    scribbled = VideoPredictor(interactive_model).open(list(frames))
    with pytest.raises(StmError, match="add_mask needs a semi checkpoint"):
        scribbled.add_mask(0, labels[0])
    with pytest.raises(StmError, match="propagate needs a semi checkpoint"):
        scribbled.propagate()
    with pytest.raises(StmError, match="no stroke"):
        scribbled.add_scribbles(0, 1, np.zeros((64, 96), dtype=bool))
    with pytest.raises(StmError, match=str(Path("missing.mp4"))):
        VideoPredictor(model).open(tmp_path / "missing.mp4")
