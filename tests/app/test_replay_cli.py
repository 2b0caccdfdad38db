"""scripts/replay_interactions.py on a log made by the annotator: one line per interaction with J&F,
the area under J&F over time, and one-line errors."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stm import STM
from stm.app.launch import open_annotator
from stm.app.strokes import Stroke
from stm.cli import run
from stm.data.io import write_frame, write_mask
from stm.evaluation.metrics import frame_scores
from stm.inference.predictor import VideoPredictor
from stm.model.checkpoint import save_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "replay_interactions.py"


def replay_cli(args):
    spec = importlib.util.spec_from_file_location("replay_interactions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_code:
        run(module.main, args)
    return exit_code.value.code


@pytest.fixture
def session(tmp_path, video):
    """A folder video, its ground truth, a checkpoint, and a log: a polygon on frame 0 (the true mask's
    box), a propagation, an undone brush stroke."""
    frames, truth = video
    for index, (frame, labels) in enumerate(zip(frames, truth, strict=True)):
        write_frame(tmp_path / "clip" / f"{index:05d}.jpg", frame, quality=100)
        write_mask(tmp_path / "truth" / f"{index:05d}.png", labels)
    torch.manual_seed(0)
    model = STM("semi", "resnet18")
    save_checkpoint(tmp_path / "model.pth", model)
    annotator = open_annotator(tmp_path / "clip", tmp_path / "ws", semi=VideoPredictor(model))
    annotator.add_object()
    rows, cols = np.nonzero(truth[0])
    height, width = truth[0].shape
    top, bottom, left, right = (
        rows.min() / height,
        (rows.max() + 1) / height,
        cols.min() / width,
        (cols.max() + 1) / width,
    )
    annotator.stroke(Stroke("polygon", 0, 1, ((left, top), (right, top), (right, bottom), (left, bottom))))
    list(annotator.propagate(0))
    annotator.stroke(Stroke("brush", 2, 1, ((0.5, 0.5),), width=5))
    annotator.undo()
    return tmp_path, annotator


def test_replay_prints_jf_after_each_interaction_and_the_area_under_it(session, video, capsys):
    root, annotator = session
    log = root / "ws" / "interactions.jsonl"
    args = [str(log), "--weights", str(root / "model.pth"), "--ground-truth", str(root / "truth")]
    assert replay_cli([*args, "--output", str(root / "replayed")]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if re.match(r"\s+\d+ ", line)]
    assert [row.split()[2] for row in rows] == ["polygon", "propagate", "brush", "undo"]
    jf = [float(row.split()[-1]) for row in rows]
    _, truth = video

    def expected(masks):  # J&F over every frame, as the DAVIS interactive protocol counts it
        return np.mean([np.mean(frame_scores(t, m, [1])) for t, m in zip(truth, masks, strict=True)])

    after_polygon = [annotator.labels(0)] + [np.zeros_like(t) for t in truth[1:]]
    assert jf[0] == pytest.approx(expected(after_polygon), abs=6e-4)
    assert jf[-1] == pytest.approx(expected([annotator.labels(i) for i in range(6)]), abs=6e-4)
    assert jf[1] > jf[0]  # propagation covers frames that were empty
    summary = lines[-2]
    assert summary.startswith(f"J&F after 4 interactions: {jf[-1]:.3f}; AUC of J&F over ")
    assert 0 <= float(summary.split()[-1]) <= 1
    for index in range(6):
        replayed = (root / "replayed" / "masks" / f"{index:05d}.png").read_bytes()
        assert replayed == (root / "ws" / "masks" / f"{index:05d}.png").read_bytes()


def test_replay_errors_are_one_line(session, capsys):
    root, _ = session
    log = str(root / "ws" / "interactions.jsonl")
    for args, message in [
        ([str(root / "nothing.jsonl")], "nothing.jsonl: cannot read the interaction log"),
        ([log, "--ground-truth", str(root / "clip")], "clip: 0 masks for a video of 6 frames"),
        ([log, "--weights", str(root / "missing.pth")], "missing.pth: no such checkpoint file"),
    ]:
        assert replay_cli(args) == 1
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("error: ") and message in error
