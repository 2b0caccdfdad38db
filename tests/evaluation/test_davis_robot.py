"""The real davisinteractive robot and metrics on a generated DAVIS-layout folder (2 sequences, 2 objects)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stm.config import load_config, to_dict
from stm.data.interactive_root import make_interactive_root
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis
from stm.errors import StmError
from stm.evaluation.davis_robot import per_sequence_table, plan_tables, run_session
from stm.evaluation.interactive_eval import Predictor, load_interactive_model, main
from stm.model.checkpoint import save_checkpoint
from stm.model.stm import STM

SPEC = SyntheticSpec(height=48, width=64, min_frames=4, max_frames=5, min_objects=2, max_objects=2)


def test_davisinteractive_imports_on_the_pinned_stack():
    from davisinteractive.metrics import batched_jaccard
    from davisinteractive.session import DavisInteractiveSession  # noqa: F401

    truth = np.zeros((1, 8, 8), dtype=int)
    truth[0, 2:6, 2:6] = 1
    assert batched_jaccard(truth, truth, nb_objects=1)[0] == 1.0


@pytest.fixture(scope="module")
def robot_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("robot")
    source = ensure_synthetic_davis(base / "generated", SPEC, train=0, val=2, seed=1)
    make_interactive_root(source, base / "root", subset="val", seed=0)
    return base / "root"


def test_full_session_with_the_real_robot(robot_root, tmp_path):
    from davisinteractive.dataset import Davis

    torch.manual_seed(0)
    predictor = Predictor(STM("interactive", "resnet18").eval(), robot_root, size=None, batch=4, thickness=1)
    seen = []
    summary, report, csv = run_session(
        robot_root, tmp_path, predictor, max_interactions=3, max_time=None, on_sequence=seen.append
    )
    assert seen == ["val-000", "val-001"]
    assert csv.is_file() and (tmp_path / "summary.json").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["auc"] == pytest.approx(summary["auc"])
    assert len(summary["curve"]["J_AND_F"]) == 3 + 2  # start, 3 interactions, the time limit
    assert 0 <= summary["auc"] <= 1
    assert sorted(report["interaction"].unique()) == [1, 2, 3]
    assert sorted(report["object_id"].unique()) == [1, 2]
    table = per_sequence_table(report)
    assert list(table["sequence"]) == ["val-000", "val-001"]
    assert {"J&F@1", "J&F@3", "seconds_per_interaction"} <= set(table.columns)
    assert "val-000" not in Davis.dataset and "val-000" not in Davis.sets["val"]  # tables restored


def test_registration_reads_the_folder(robot_root):
    sequences, entries = plan_tables(robot_root, "val", None)
    assert sequences == ["val-000", "val-001"]
    entry = entries["val-000"]
    assert entry["num_objects"] == 2 and entry["num_scribbles"] == 1 and entry["image_size"] == [64, 48]
    assert entry["num_frames"] == len(list((robot_root / "Annotations" / "480p" / "val-000").glob("*.png")))


def test_cli_writes_the_summary(robot_root, tmp_path, capsys):
    main(["--root", str(robot_root), "--output", str(tmp_path), "--sequences", "val-001",
          "--backbone", "resnet18", "--max-interactions", "2", "--size", "24"])
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "per_sequence.csv").is_file()
    assert "AUC" in capsys.readouterr().out


def test_bad_inputs_are_one_line_errors(robot_root, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(robot_root, broken)
    shutil.rmtree(broken / "Scribbles" / "val-000")
    with pytest.raises(StmError, match="001.json"):
        plan_tables(broken, "val", None)
    (broken / "Annotations" / "480p" / "val-001" / "00001.png").unlink()
    with pytest.raises(StmError, match="00001.png"):
        plan_tables(broken, "val", ["val-001"])
    shutil.rmtree(broken / "Annotations" / "480p" / "val-001")
    with pytest.raises(StmError, match="no annotations"):
        plan_tables(broken, "val", ["val-001"])
    shutil.rmtree(broken / "Scribbles")
    with pytest.raises(StmError, match="no Scribbles folder"):
        main(["--root", str(broken), "--output", str(tmp_path / "out"), "--backbone", "resnet18"])
    greyscale = tmp_path / "grey"
    shutil.copytree(robot_root, greyscale)
    Image.fromarray(np.zeros((48, 64), dtype=np.uint8), mode="L").save(
        greyscale / "Annotations" / "480p" / "val-000" / "00000.png"
    )
    with pytest.raises(StmError, match="palette"):
        plan_tables(greyscale, "val", ["val-000"])


def test_semi_weights_are_refused(robot_root, tmp_path):
    weights = tmp_path / "semi.pth"
    save_checkpoint(weights, STM("semi", "resnet18"))
    with pytest.raises(StmError, match="semi"):
        main(["--root", str(robot_root), "--output", str(tmp_path / "out"), "--weights", str(weights)])


def test_strokes_default_to_the_width_the_checkpoint_trained_with(tmp_path):
    weights = tmp_path / "interactive.pth"
    config = load_config(None, ["model.mode=interactive", "interactive.scribble_thickness=5"])
    save_checkpoint(weights, STM("interactive", "resnet18"), config=to_dict(config))
    assert load_interactive_model(str(weights), "resnet18", "cpu")[1] == 5
    save_checkpoint(weights, STM("interactive", "resnet18"))  # no run config (e.g. converted weights)
    assert load_interactive_model(str(weights), "resnet18", "cpu")[1] == 3


def test_the_network_runs_at_the_size_the_checkpoint_trained_at(robot_root, tmp_path, monkeypatch):
    import stm.evaluation.interactive_eval as interactive_eval

    sizes = []

    class Spy(interactive_eval.InteractiveSession):
        def __init__(self, model, frames, *args, **kwargs):
            sizes.append(tuple(frames.shape[-2:]))
            super().__init__(model, frames, *args, **kwargs)

    monkeypatch.setattr(interactive_eval, "InteractiveSession", Spy)
    weights = tmp_path / "small.pth"
    save_checkpoint(weights, STM("interactive", "resnet18", decoder_channels=32), size=24)
    common = ["--root", str(robot_root), "--sequences", "val-000", "--weights", str(weights), "--max-interactions", "1"]
    main([*common, "--output", str(tmp_path / "default")])
    main([*common, "--output", str(tmp_path / "native"), "--size", "native"])
    assert sizes == [(24, 32), (48, 64)]  # the robot's frames are 64x48


def test_cli_prints_one_line_and_exits_1(tmp_path):
    import subprocess
    import sys

    (tmp_path / "Annotations" / "480p").mkdir(parents=True)
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "eval_interactive.py"), "--root", str(tmp_path), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=root, env={"PYTHONPATH": str(root), "PATH": ""},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}: no Scribbles folder")


def test_the_robots_corrections_land_in_the_right_scribble_maps():
    """A later round: the installed robot draws on the errors of a prediction, with the id that is really
    there (0 on false positives); for object k, its own strokes are positive, background and other objects
    negative."""
    from davisinteractive.robot import InteractiveScribblesRobot
    from scipy.ndimage import binary_dilation

    from stm.data.scribbles import davis_json_maps

    truth = np.zeros((1, 64, 96), dtype=np.int64)
    truth[0, 10:50, 10:40], truth[0, 10:50, 60:90] = 1, 2
    prediction = np.zeros_like(truth)
    prediction[0, 10:50, 10:25] = 1  # misses the right half of object 1: a stroke of id 1
    prediction[0, 10:50, 45:90] = 2  # spills onto the background left of object 2: a stroke of id 0
    prediction[0, 32:50, 60:90] = 1  # calls the bottom of object 2 object 1: a stroke of id 2
    scribbles = InteractiveScribblesRobot().interact("seq", prediction, truth, nb_objects=2, frame=0)
    strokes = scribbles["scribbles"][0]
    assert {stroke["object_id"] for stroke in strokes} == {0, 1, 2}
    maps = davis_json_maps(scribbles, 0, 2, 64, 96)
    for stroke in strokes:
        drawn_id = stroke["object_id"]
        x, y = np.round(np.asarray(stroke["path"]) * [96, 64]).astype(int).clip(0, [95, 63]).T
        error = binary_dilation((truth[0] == drawn_id) & (prediction[0] != drawn_id))
        assert error[y, x].all()  # the robot drew where that id was missed
        for k in (1, 2):
            assert maps[k - 1, 0 if k == drawn_id else 1][y, x].all(), (drawn_id, k)
            if k != drawn_id:
                assert not maps[k - 1, 0][y, x].any(), (drawn_id, k)
