"""DAVIS J&F, written to the DAVIS definitions (davis2017-evaluation) and checked against vos-benchmark.

- J: intersection over union of one object's predicted and true masks; 1 when both are empty.
- F: boundary F-measure. Boundaries are the one-pixel edges of each mask; a boundary pixel matches
  when the other boundary, dilated by a disk of radius ceil(0.008 * image diagonal), covers it.
  Both boundaries empty: 1; exactly one empty: 0.
- Semi-supervised evaluation drops the first frame (it is given) and the last frame.
- Per object: Mean, Recall (fraction of frames above 0.5) and Decay (mean of the first quarter of
  the frames minus the last quarter, with the davis2017-evaluation binning). Global figures average
  the objects; J&F-Mean = (J-Mean + F-Mean) / 2. Values are fractions in [0, 1], as DAVIS writes them.

The per-frame values are computed here rather than by vos-benchmark because its API returns only
per-object means (no Recall or Decay) and exits the process on layout mismatches; a test runs
vos-benchmark on generated folders and checks that the means agree.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stm.data.io import atomic_write

BOUNDARY_FRACTION = 0.008
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks; 1 when both are empty."""
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def mean_jaccard(prediction: np.ndarray, truth: np.ndarray, num_objects: int) -> np.ndarray:
    """J of objects 1..N averaged over the objects, per frame: id maps [..., H, W] -> [...]."""
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    scores = np.empty(truth.shape[:-2])
    for index in np.ndindex(scores.shape):
        pred, gt = prediction[index], truth[index]
        scores[index] = np.mean([jaccard(pred == k, gt == k) for k in range(1, num_objects + 1)])
    return scores


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a boolean mask: pixels that differ from their right, lower or lower-right
    neighbour (the Berkeley seg2bmap convention DAVIS uses)."""
    right = np.zeros_like(mask)
    down = np.zeros_like(mask)
    diagonal = np.zeros_like(mask)
    right[:, :-1] = mask[:, 1:]
    down[:-1, :] = mask[1:, :]
    diagonal[:-1, :-1] = mask[1:, 1:]
    edges = (mask ^ right) | (mask ^ down) | (mask ^ diagonal)
    edges[-1, :] = mask[-1, :] ^ right[-1, :]
    edges[:, -1] = mask[:, -1] ^ down[:, -1]
    edges[-1, -1] = False
    return edges


def boundary_disk(shape: tuple[int, int]) -> np.ndarray:
    """The dilation footprint for a frame of this size (radius 8 px at 480x854)."""
    from skimage.morphology import disk  # here: importing skimage costs 0.4 s and 30 MB, needed only to score

    return disk(int(np.ceil(BOUNDARY_FRACTION * np.linalg.norm(shape)))).astype(np.uint8)


def boundary_f(pred: np.ndarray, gt: np.ndarray, footprint: np.ndarray | None = None) -> float:
    """Boundary F-measure of two boolean masks."""
    footprint = boundary_disk(pred.shape) if footprint is None else footprint
    pred_edges, gt_edges = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = np.count_nonzero(pred_edges), np.count_nonzero(gt_edges)
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    pred_dilated = cv2.dilate(pred_edges.astype(np.uint8), footprint).astype(bool)
    gt_dilated = cv2.dilate(gt_edges.astype(np.uint8), footprint).astype(bool)
    precision = np.count_nonzero(pred_edges & gt_dilated) / n_pred
    recall = np.count_nonzero(gt_edges & pred_dilated) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def frame_scores(gt: np.ndarray, pred: np.ndarray, object_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """J and F of each object on one frame: two arrays [K]."""
    footprint = boundary_disk(gt.shape)
    j = [jaccard(pred == k, gt == k) for k in object_ids]
    f = [boundary_f(pred == k, gt == k, footprint) for k in object_ids]
    return np.array(j), np.array(f)


def sequence_scores(
    gt_labels: np.ndarray | list[np.ndarray],
    pred_labels: np.ndarray | list[np.ndarray],
    object_ids: list[int],
    skip_first_and_last: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F, arrays [K, T'] with T' = T - 2 when the first and last frames are
    dropped (the DAVIS semi-supervised protocol). gt/pred: [T, H, W] id maps."""
    if len(gt_labels) != len(pred_labels):
        raise ValueError(f"{len(gt_labels)} ground-truth frames but {len(pred_labels)} predictions")
    frames = range(1, len(gt_labels) - 1) if skip_first_and_last else range(len(gt_labels))
    scores = [frame_scores(np.asarray(gt_labels[t]), np.asarray(pred_labels[t]), object_ids) for t in frames]
    if not scores:
        empty = np.zeros((len(object_ids), 0))
        return empty, empty.copy()
    j, f = zip(*scores, strict=True)
    return np.stack(j, axis=1), np.stack(f, axis=1)


def statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, Recall (> 0.5) and Decay of one object's per-frame values, as davis2017-evaluation bins
    them (four bins over the frames; Decay = mean of the first minus mean of the last)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.nanmean(values))
    recall = float(np.nanmean(values > 0.5))
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
    bins = [values[edges[i] : edges[i + 1] + 1] for i in range(4)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


@dataclass
class ObjectResult:
    """The scores of one object of one sequence."""

    sequence: str
    object_id: int
    j: np.ndarray  # per evaluated frame
    f: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.sequence}_{self.object_id}"


def summarise(results: list[ObjectResult]) -> dict[str, float]:
    """The DAVIS global figures (GLOBAL_COLUMNS) over all objects."""
    if not results:
        raise ValueError("no objects to summarise")
    j_stats = np.array([statistics(r.j) for r in results])
    f_stats = np.array([statistics(r.f) for r in results])
    j_mean, j_recall, j_decay = np.nanmean(j_stats, axis=0)
    f_mean, f_recall, f_decay = np.nanmean(f_stats, axis=0)
    values = ((j_mean + f_mean) / 2, j_mean, j_recall, j_decay, f_mean, f_recall, f_decay)
    return {name: float(v) for name, v in zip(GLOBAL_COLUMNS, values, strict=True)}


def _csv_text(header: tuple[str, ...], rows: list[tuple]) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([f"{v:.3f}" if isinstance(v, float) else v for v in row])
    return stream.getvalue()


def write_results(output: str | os.PathLike, split: str, results: list[ObjectResult]) -> dict[str, float]:
    """Writes global_results-<split>.csv and per-sequence_results-<split>.csv (DAVIS column layout,
    three decimals) atomically; returns the global figures."""
    output = Path(output)
    summary = summarise(results)
    global_text = _csv_text(GLOBAL_COLUMNS, [tuple(summary[c] for c in GLOBAL_COLUMNS)])
    rows = [(r.name, statistics(r.j)[0], statistics(r.f)[0]) for r in results]
    for name, text in (
        (f"global_results-{split}.csv", global_text),
        (f"per-sequence_results-{split}.csv", _csv_text(SEQUENCE_COLUMNS, rows)),
    ):
        atomic_write(output / name, lambda tmp, text=text: Path(tmp).write_text(text))
    return summary
