import csv

import numpy as np
import pytest
from vos_benchmark.benchmark import benchmark

from stm.data.io import write_mask
from stm.data.synthetic import SyntheticSpec, render_video
from stm.evaluation.metrics import (
    GLOBAL_COLUMNS,
    ObjectResult,
    boundary_f,
    jaccard,
    mean_jaccard,
    sequence_scores,
    statistics,
    summarise,
    write_results,
)


def _noisy(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A prediction: the truth shifted a little, with some ids swapped in a random block."""
    pred = np.roll(labels, shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(1, 2)).copy()
    t, y, x = rng.integers(0, labels.shape[0]), rng.integers(0, 40), rng.integers(0, 60)
    pred[t, y : y + 20, x : x + 30] = rng.integers(0, labels.max() + 1)
    return pred


def test_means_match_vos_benchmark_on_generated_sequences(tmp_path):
    rng = np.random.default_rng(1)
    spec = SyntheticSpec(height=72, width=120, min_frames=6, max_frames=9, min_objects=2, max_objects=3)
    ours = {}
    for name in ("a", "b"):
        _, labels = render_video(rng, spec)
        pred = _noisy(labels, rng)
        for t in range(len(labels)):
            write_mask(tmp_path / "gt" / name / f"{t:05d}.png", labels[t])
            write_mask(tmp_path / "pred" / name / f"{t:05d}.png", pred[t])
        ids = [int(i) for i in np.unique(labels[1:-1]) if i]
        j, f = sequence_scores(labels, pred, ids)
        assert j.shape == f.shape == (len(ids), len(labels) - 2)
        ours[name] = dict(zip(ids, zip(j.mean(1), f.mean(1), strict=True), strict=True))
    _, _, _, (objects,) = benchmark([str(tmp_path / "gt")], [str(tmp_path / "pred")], num_processes=1, verbose=False)
    for name, (iou, boundary) in objects.items():
        assert set(iou) == set(ours[name])
        for object_id in iou:
            assert ours[name][object_id][0] * 100 == pytest.approx(iou[object_id], abs=1e-9)
            assert ours[name][object_id][1] * 100 == pytest.approx(boundary[object_id], abs=1e-9)


def test_empty_masks_follow_the_davis_conventions():
    empty = np.zeros((30, 40), dtype=bool)
    full = empty.copy()
    full[5:20, 5:30] = True
    assert jaccard(empty, empty) == 1 and boundary_f(empty, empty) == 1
    assert jaccard(full, empty) == 0 and boundary_f(full, empty) == 0 and boundary_f(empty, full) == 0
    assert jaccard(full, full) == 1 and boundary_f(full, full) == 1


def test_first_and_last_frames_are_not_scored():
    gt = np.ones((4, 10, 10), dtype=np.uint8)
    pred = gt.copy()
    pred[0] = pred[3] = 0
    j, f = sequence_scores(gt, pred, [1])
    assert j.tolist() == [[1.0, 1.0]] and f.tolist() == [[1.0, 1.0]]


def test_statistics_use_the_davis_quarter_bins():
    values = np.linspace(1.0, 0.0, 10)  # bins: frames 0-2 and 7-9
    mean, recall, decay = statistics(values)
    assert mean == pytest.approx(0.5)
    assert recall == pytest.approx(0.5)
    assert decay == pytest.approx(values[0:3].mean() - values[7:10].mean())


def test_results_tables_have_the_davis_columns(tmp_path):
    results = [
        ObjectResult("bear", 1, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.5, 0.5, 0.5, 0.5])),
        ObjectResult("bear", 2, np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 1.0, 1.0, 1.0])),
    ]
    summary = write_results(tmp_path, "val", results)
    assert summary == summarise(results)
    assert summary["J-Mean"] == pytest.approx(0.5) and summary["F-Mean"] == pytest.approx(0.75)
    assert summary["J&F-Mean"] == pytest.approx(0.625) and summary["J-Recall"] == pytest.approx(0.5)
    rows = list(csv.reader((tmp_path / "global_results-val.csv").open()))
    assert rows[0] == list(GLOBAL_COLUMNS) and rows[1][0] == "0.625"
    rows = list(csv.reader((tmp_path / "per-sequence_results-val.csv").open()))
    assert rows == [["Sequence", "J-Mean", "F-Mean"], ["bear_1", "0.750", "0.500"], ["bear_2", "0.250", "1.000"]]


def test_mean_jaccard_averages_the_objects_of_each_frame():
    truth = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    truth[..., :2, :2], truth[..., 2:, 2:] = 1, 2
    prediction = truth.copy()
    prediction[0, 1, 0, 0] = 0  # object 1 loses 1 of its 4 pixels: J 3/4
    prediction[1, 2] = 0  # nothing predicted: J 0 for both
    expected = np.ones((2, 3))
    expected[0, 1], expected[1, 2] = (0.75 + 1) / 2, 0
    np.testing.assert_allclose(mean_jaccard(prediction, truth, 2), expected)
    assert mean_jaccard(np.zeros((4, 4)), np.zeros((4, 4)), 2) == 1.0  # absent everywhere: J 1, as jaccard
