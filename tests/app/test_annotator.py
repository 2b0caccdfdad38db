"""The annotator with a real VideoPredictor (small random-init STM): what propagation rewrites and what
it keeps, cancel, failures, undo, objects, scribbles; and the replay of its log."""

import itertools

import numpy as np
import pytest
import torch

from stm import STM
from stm.app.annotator import Annotator, Busy
from stm.app.jobs import JobRunner
from stm.app.replay import Scores, area_under_curve, replay
from stm.app.strokes import Stroke
from stm.app.workspace import Workspace, read_log
from stm.data.frames import open_frames
from stm.errors import StmError
from stm.evaluation.metrics import frame_scores
from stm.inference.predictor import VideoPredictor
from tests.app.conftest import make_annotator

SQUARE = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.7), (0.2, 0.7))


@pytest.fixture(scope="module")
def semi():
    torch.manual_seed(0)
    return VideoPredictor(STM("semi", "resnet18"))


@pytest.fixture(scope="module")
def interactive():
    torch.manual_seed(0)
    return VideoPredictor(STM("interactive", "resnet18"))


def polygon(frame, object_id=1, path=SQUARE):
    return Stroke("polygon", frame, object_id, path)


def run(iterator):
    return list(iterator)


def masks(annotator):
    return [annotator.labels(i).copy() for i in range(annotator.workspace.num_frames)]


def test_propagation_writes_every_frame_after_the_start_and_logs_it(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.stroke(polygon(0))
    assert run(annotator.propagate(0)) == [1, 2, 3, 4, 5]
    assert annotator.workspace.frames_with_masks() == [0, 1, 2, 3, 4, 5]
    expected = semi.open(list(video[0]))
    expected.add_mask(0, annotator.labels(0))
    for result in expected.propagate(start=0):  # the tool adds nothing to the predictor's result
        assert np.array_equal(annotator.labels(result.index), result.labels)
    entry = read_log(annotator.workspace.log_path)[-1]
    assert (entry["action"], entry["frame"], entry["reverse"], entry["frames"], entry["outcome"]) == (
        "propagate", 0, False, 5, "done"
    )  # fmt: skip


def test_a_correction_rewrites_only_downstream_and_hand_frames_are_never_overwritten(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.stroke(polygon(0))
    run(annotator.propagate(0))
    before = masks(annotator)
    annotator.stroke(Stroke("eraser", 3, 1, ((0.0, 0.5), (1.0, 0.5)), width=10))  # a correction on frame 3
    annotator.stroke(polygon(5, path=((0.7, 0.7), (0.9, 0.7), (0.9, 0.9))))  # and a hand frame further on
    corrected, hand = annotator.labels(3), annotator.labels(5)
    assert run(annotator.propagate(3)) == [4, 5]
    after = masks(annotator)
    for index in (0, 1, 2):
        assert np.array_equal(after[index], before[index])
    assert np.array_equal(after[3], corrected) and np.array_equal(after[5], hand)
    assert not np.array_equal(after[4], before[4])
    assert annotator.workspace.annotated == {0, 3, 5}


def test_backward_propagation_rewrites_only_the_frames_before(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.stroke(polygon(4))
    assert run(annotator.propagate(4, reverse=True)) == [3, 2, 1, 0]
    assert annotator.workspace.frames_with_masks() == [0, 1, 2, 3, 4]  # frame 5 untouched


def test_propagating_from_a_frame_makes_it_a_reference_and_needs_an_object(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    with pytest.raises(StmError, match="frame 2 has no object to propagate: paint one first"):
        annotator.propagate(2)
    annotator.stroke(polygon(0))
    run(annotator.propagate(0))
    assert annotator.workspace.annotated == {0}
    run(annotator.propagate(2))  # from a propagated frame: it becomes a reference, kept from now on
    assert annotator.workspace.annotated == {0, 2}


def test_cancel_keeps_the_frames_done_and_the_log_replays_exactly_that(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.stroke(polygon(0))
    frames = annotator.propagate(0)
    assert list(itertools.islice(frames, 2)) == [1, 2]
    with pytest.raises(Busy, match="a propagation is running"):
        annotator.stroke(polygon(1))  # edits and exports wait for the propagation
    with pytest.raises(Busy, match="a propagation is running"):
        annotator.export()
    frames.close()
    assert annotator.workspace.frames_with_masks() == [0, 1, 2] and annotator.busy is None
    entry = read_log(annotator.workspace.log_path)[-1]
    assert (entry["frames"], entry["outcome"]) == (2, "cancelled")

    replayed = Workspace(tmp_path / "replay", "generated", 6, 48, 64)
    frames = open_frames(list(video[0]))
    list(replay(read_log(annotator.workspace.log_path), lambda: Annotator(replayed, frames, list(video[0]), semi)))
    assert replayed.frames_with_masks() == [0, 1, 2]
    for index in range(3):
        assert np.array_equal(replayed.labels(index), annotator.labels(index))


def test_cancel_through_the_job_runner(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.stroke(polygon(0))
    runner = JobRunner()
    runner.start("propagation", 5, annotator.propagate(0))
    runner.cancel()  # long before the first frame is done: the job stops after it
    runner.wait(30)
    status = runner.status()
    assert status["state"] == "cancelled" and status["done"] <= 2 and annotator.busy is None
    assert annotator.workspace.frames_with_masks() == [0, *status["updated"]]


def test_a_failed_propagation_says_why_and_keeps_the_workspace(tmp_path, video, semi):
    class Truncated(list):  # a video whose frame 3 cannot be decoded
        def __getitem__(self, index):
            if index == 3:
                raise StmError("clip.mp4 frame 3: cannot be decoded (Invalid data found)")
            return super().__getitem__(index)

    frames = Truncated(video[0])
    annotator = make_annotator(tmp_path / "ws", frames, semi, source=frames)
    annotator.add_object()
    annotator.stroke(polygon(0))
    runner = JobRunner()
    runner.start("propagation", 5, annotator.propagate(0))
    runner.wait(30)
    status = runner.status()
    assert status["state"] == "failed" and status["error"] == "clip.mp4 frame 3: cannot be decoded (Invalid data found)"
    assert status["updated"] == [1, 2] and annotator.workspace.frames_with_masks() == [0, 1, 2]
    assert read_log(annotator.workspace.log_path)[-1]["outcome"].startswith("failed: clip.mp4 frame 3")
    annotator.stroke(polygon(1))  # the session goes on
    assert annotator.busy is None


def test_undo_reaches_the_predictor(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.stroke(polygon(0))
    run(annotator.propagate(0))
    annotator.stroke(polygon(3, path=((0.7, 0.1), (0.95, 0.1), (0.95, 0.3))))
    run(annotator.propagate(0))  # frame 3 is now a hand frame the predictor holds
    assert annotator.workspace.annotated == {0, 3}
    annotator.undo()
    assert annotator.workspace.annotated == {0}
    run(annotator.propagate(0))  # with frame 3 no longer given, the predictor rewrites it
    clean = make_annotator(tmp_path / "clean", video[0], semi)
    clean.add_object()
    clean.stroke(polygon(0))
    run(clean.propagate(0))
    assert all(np.array_equal(a, b) for a, b in zip(masks(annotator), masks(clean), strict=True))


def test_deleting_an_object_reaches_the_predictor(tmp_path, video, semi):
    annotator = make_annotator(tmp_path / "ws", video[0], semi)
    annotator.add_object()
    annotator.add_object()
    annotator.stroke(polygon(0, 1))
    annotator.stroke(polygon(0, 2, path=((0.7, 0.7), (0.95, 0.7), (0.95, 0.95))))
    run(annotator.propagate(0))
    assert set(np.unique(annotator.labels(5))) - {0}
    changed = annotator.delete_object(2)
    assert 0 in changed and all(not (annotator.labels(i) == 2).any() for i in range(6))
    run(annotator.propagate(0))
    assert all(not (annotator.labels(i) == 2).any() for i in range(6))


def test_scribbles_resegment_every_frame_but_hand_frames(tmp_path, video, interactive):
    annotator = make_annotator(tmp_path / "ws", video[0], interactive=interactive)
    assert "positive" in annotator.info()["tools"] and not annotator.info()["propagation"]
    annotator.add_object()
    annotator.stroke(polygon(5))
    hand = annotator.labels(5)
    done = run(annotator.scribble(Stroke("positive", 2, 1, ((0.3, 0.4), (0.5, 0.5)), width=3)))
    assert done == list(range(6)) and annotator.workspace.scribbled == {2}
    assert annotator.workspace.frames_with_masks() == list(range(6))
    assert np.array_equal(annotator.labels(5), hand)
    run(annotator.scribble(Stroke("negative", 4, 1, ((0.8, 0.8), (0.9, 0.9)), width=3)))
    assert annotator.workspace.scribbled == {2, 4}
    tools = [e.get("tool") for e in read_log(annotator.workspace.log_path) if e["action"] == "stroke"]
    assert tools == ["polygon", "positive", "negative"]


def test_scores_follow_the_masks_frame_by_frame(video):
    truth = list(video[1])
    scores = Scores(truth)
    assert scores.ids == [1] and scores.jf == pytest.approx(
        np.mean([np.mean(frame_scores(t, np.zeros_like(t), [1])) for t in truth])
    )
    scores.update(2, truth[2])
    j, f = frame_scores(truth[2], truth[2], [1])
    assert (j[0], f[0]) == (1.0, 1.0) and scores.j[2, 0] == 1.0
    for index, labels in enumerate(truth):
        scores.update(index, labels)
    assert scores.jf == 1.0
    assert area_under_curve([0, 10, 20], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    assert area_under_curve([0], [0.3]) == 0.3
