"""Interactive validation plays the DAVIS robot's protocol: the same scores as eval_interactive.py."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stm.config import load_config, to_dict
from stm.data.interactive_root import make_interactive_root
from stm.data.synthetic import SyntheticSpec, ensure_synthetic_davis
from stm.evaluation.davis_robot import interaction_auc, plan_tables, registered
from stm.evaluation.interactive_eval import main as eval_interactive
from stm.model.checkpoint import save_checkpoint
from stm.model.stm import STM
from stm.train.validation import first_interaction, load_videos, make_validator

SPEC = SyntheticSpec(height=48, width=64, min_frames=5, max_frames=6, min_objects=2, max_objects=2)
ROUNDS = 4


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny frames: one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Generated held-out videos, and the robot-ready copy scripts/make_interactive_root.py makes of them."""
    base = tmp_path_factory.mktemp("interactive-val")
    generated = ensure_synthetic_davis(base / "generated", SPEC, train=0, val=2, seed=3)
    make_interactive_root(generated, base / "robot", subset="val")
    return generated, base / "robot"


def model_and_config(root: Path, rounds: int = ROUNDS):
    config = load_config(None, [
        "model.mode=interactive", "model.backbone=resnet18", "model.decoder_channels=32",
        f"val.root={root}", f"interactive.rounds={rounds}",
        "data.size=[48,64]",  # trained at the videos' size: eval_interactive runs a checkpoint at its data.size
    ])
    torch.manual_seed(0)
    model = STM("interactive", "resnet18", decoder_channels=32).eval()
    return model, config


def test_validation_and_eval_interactive_agree_on_the_same_videos(folders, tmp_path):
    _, robot = folders
    model, config = model_and_config(robot)
    scores = make_validator(config)(model, 0)
    weights = tmp_path / "model.pth"
    save_checkpoint(weights, model, config=to_dict(config))
    eval_interactive([
        "--root", str(robot), "--output", str(tmp_path / "out"), "--weights", str(weights),
        "--max-interactions", str(ROUNDS), "--max-time", "0",
    ])
    report = pd.read_csv(next((tmp_path / "out").glob("result_*.csv")))
    per_object = report.groupby(["interaction", "sequence", "object_id"])["j_and_f"].mean()
    official = per_object.groupby("interaction").mean()
    assert list(official.index) == list(range(1, ROUNDS + 1))
    for interaction, value in official.items():
        assert scores[f"J&F@{interaction}"] == pytest.approx(value, abs=1e-9)
    assert scores["J&F"] == pytest.approx(official[ROUNDS], abs=1e-9)
    assert len({round(v, 6) for v in official}) > 1  # the robot's corrections changed the predictions

    # the AUC is the evaluation service's own, when every interaction counts as one unit of time
    from davisinteractive.evaluation.service import EvaluationService

    chosen, entries = plan_tables(robot, "val", None)
    with registered("val", chosen, entries):
        service = EvaluationService("val", davis_root=str(robot), max_i=ROUNDS)
        summary = service.summarize_report(report.drop(columns=["Unnamed: 0"]).assign(timing=1.0))
    assert scores["AUC"] == pytest.approx(summary["auc"], abs=1e-9)


def test_first_scribbles_are_synthesised_as_the_robot_ready_folder_holds_them(folders):
    generated, robot = folders
    for name, _, labels in load_videos(load_config(None, [f"val.root={generated}"]).val):
        synthesised = first_interaction(generated, name, np.stack(labels))
        written = json.loads((robot / "Scribbles" / name / "001.json").read_text())
        assert first_interaction(robot, name, np.stack(labels)) == written
        strokes = [[(s["object_id"], s["path"]) for s in frame] for frame in synthesised["scribbles"]]
        assert strokes == [[(s["object_id"], s["path"]) for s in frame] for frame in written["scribbles"]]
        assert sum(map(len, strokes)) == 3  # one per object and one on the background


def test_validation_scores_every_round_and_the_auc(folders):
    generated, _ = folders
    model, config = model_and_config(generated, rounds=3)
    scores = make_validator(config)(model, 0)
    assert set(scores) == {"J&F", "J", "F", "J&F@1", "J&F@2", "J&F@3", "AUC"}
    assert scores["J&F"] == pytest.approx((scores["J"] + scores["F"]) / 2)
    assert scores["J&F"] == pytest.approx(scores["J&F@3"])
    assert scores["AUC"] == pytest.approx(interaction_auc([scores[f"J&F@{r}"] for r in (1, 2, 3)]))


def test_interaction_auc_is_the_trapezoid_from_zero():
    assert interaction_auc([1.0]) == pytest.approx(0.5)
    assert interaction_auc([0.4, 0.8]) == pytest.approx((0.2 + 0.6) / 2)
