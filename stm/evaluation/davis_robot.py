"""The DAVIS interactive robot: the only module that touches `davisinteractive`.

It drives the real, unmodified `DavisInteractiveSession` locally: the library's robot picks the next
frame and draws the next scribble, and its metric code computes every score. We only supply the
predictions (a callback) and prepare the ground on which the library stands:

- On the real DAVIS 2017 folder every chosen sequence matches the library's shipped table
  (frames, scribble files, image size), and it runs exactly as the challenge does.
- On any other DAVIS-layout folder (Annotations/480p/<seq>/NNNNN.png palette masks and
  Scribbles/<seq>/001.json), the library's hard-coded tables (`Davis.dataset`, `Davis.sets`) do
  not know the sequences; they are registered from the folder's contents with `mock.patch.dict`
  for the session's lifetime and restored afterwards.

Every file the library reads is checked first: a missing file would make it try to download the
DAVIS archives; here it is a one-line StmError instead.

One dependency changed under the robot: skimage's `medial_axis` (the skeleton each stroke follows) breaks
ties with a fresh random generator on every call since skimage 0.19, where the skimage of the challenge
always used `RandomState(0)`. Unseeded, the same prediction gets a different stroke at each call (in our
tests, a different longest path through the skeleton). The robot's code is left as it is; its call of
`medial_axis` gets a fixed seed (`deterministic_skeletons`), so every score here is reproducible.

The same protocol also plays in process, on videos held in memory (`play_protocol`: training
validation, and the robot's corrections of the interactive training step): the library's robot with
the evaluation service's parameters draws each correction, the library's metrics score each
interaction, and the next frame is chosen by the service's rule. Without a time limit and with
every interaction counted as one unit of time, the service's AUC is `interaction_auc`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from PIL import Image

from stm.data.io import without_void
from stm.errors import StmError

log = logging.getLogger("stm")

METRICS = ("J", "F", "J_AND_F")
SUBSETS = ("train", "val", "trainval")

# predict(sequence, scribbles of the last interaction, new_sequence, number of objects)
#   -> object ids [T, H, W] at the annotations' size
Predict = Callable[[str, dict, bool, int], np.ndarray]


def _davis():
    """davisinteractive's dataset class; imported here so that importing stm never needs it."""
    from davisinteractive.dataset import Davis

    return Davis


def sequence_entry(root: Path, name: str, subset: str) -> dict:
    """The table entry davisinteractive needs for one sequence, read from the folder's contents."""
    annotations = root / "Annotations" / "480p" / name
    files = sorted(annotations.glob("*.png")) if annotations.is_dir() else []
    if not files:
        raise StmError(f"{annotations}: no annotations for sequence {name} (the robot scores against them)")
    expected = [f"{index:05d}.png" for index in range(len(files))]
    if [file.name for file in files] != expected:
        missing = next(e for e, f in zip(expected, files, strict=True) if f.name != e)
        raise StmError(f"{annotations}: annotations must be numbered 00000.png.. without gaps ({missing} is missing)")
    frames = root / "JPEGImages" / "480p" / name
    count = len(list(frames.glob("*.jpg"))) if frames.is_dir() else 0
    if count != len(files):
        raise StmError(f"{frames}: {count} frames (.jpg) but {len(files)} annotations")
    objects, size = 0, None
    for file in files:
        with Image.open(file) as image:
            if image.mode != "P":
                raise StmError(
                    f"{file}: annotations must be palette PNGs of object ids (DAVIS 2017 style), not mode "
                    f"{image.mode}; scripts/make_interactive_root.py converts a folder"
                )
            size = size or image.size
            if image.size != size:
                raise StmError(f"{file}: size {image.size} differs from the sequence's first annotation {size}")
            ids = np.asarray(image)
        objects = max(objects, int(without_void(ids).max(initial=0)))
    if objects == 0:
        raise StmError(f"{annotations}: no object in any annotation")
    scribbles = _scribble_files(root, name)
    return {
        "name": name,
        "set": subset,
        "num_frames": len(files),
        "num_objects": objects,
        "num_scribbles": len(scribbles),
        "image_size": list(size),
        "year": 2017,
        "eval_t": True,
        "attributes": [],
    }


def _scribble_files(root: Path, name: str) -> list[Path]:
    folder = root / "Scribbles" / name
    files = []
    while (folder / f"{len(files) + 1:03d}.json").is_file():
        files.append(folder / f"{len(files) + 1:03d}.json")
    if not files:
        raise StmError(f"{folder / '001.json'}: missing (the robot's first scribble for sequence {name})")
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise StmError(f"{file}: unreadable scribble JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("sequence") != name or not isinstance(data.get("scribbles"), list):
            raise StmError(f"{file}: not DAVIS scribble JSON for sequence {name}")
    return files


def plan_tables(root: str | Path, subset: str, sequences: list[str] | None) -> tuple[list[str], dict[str, dict]]:
    """The sequences to evaluate and the table entries to register for them (empty when the folder
    is the real DAVIS 2017 and the shipped table already describes every chosen sequence)."""
    root = Path(root)
    if subset not in SUBSETS:
        raise StmError(f"--subset {subset!r} is not one of {', '.join(SUBSETS)}")
    if not (root / "Annotations" / "480p").is_dir():
        raise StmError(f"{root}: not a DAVIS-layout folder (no Annotations/480p)")
    if not (root / "Scribbles").is_dir():
        raise StmError(
            f"{root}: no Scribbles folder (the robot starts from Scribbles/<seq>/001.json); "
            f"scripts/make_interactive_root.py makes one"
        )
    chosen = sequences or _listed_sequences(root, subset)
    shipped = _davis().dataset
    register = {}
    for name in chosen:
        entry = sequence_entry(root, name, subset)
        known = shipped.get(name)
        same = known is not None and all(
            known[key] == entry[key] for key in ("num_frames", "num_objects", "num_scribbles", "image_size")
        )
        if same and subset in (known["set"], "trainval"):
            continue
        register[name] = entry
    return chosen, register


def _listed_sequences(root: Path, subset: str) -> list[str]:
    """ImageSets/2017/<subset>.txt when present, else every sequence that has scribbles."""
    listing = root / "ImageSets" / "2017" / f"{subset}.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in (root / "Scribbles").iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise StmError(f"{listing if listing.is_file() else root / 'Scribbles'}: no sequences")
    return names


@contextmanager
def deterministic_skeletons() -> Iterator[None]:
    """The robot's `medial_axis` with a fixed tie-breaking seed (see the module docstring)."""
    from davisinteractive.robot import interactive_robot
    from skimage.morphology import medial_axis

    with mock.patch.object(interactive_robot, "medial_axis", functools.partial(medial_axis, rng=0)):
        yield


@contextmanager
def registered(subset: str, sequences: list[str], entries: dict[str, dict]) -> Iterator[None]:
    """davisinteractive's tables with `entries` added and `subset` set to `sequences`, for a while."""
    davis = _davis()
    with mock.patch.dict(davis.dataset, entries), mock.patch.dict(davis.sets, {subset: list(sequences)}):
        yield


def run_session(
    root: str | Path,
    output: str | Path,
    predict: Predict,
    subset: str = "val",
    sequences: list[str] | None = None,
    max_interactions: int = 8,
    max_time: float | None = 240,
    metric: str = "J_AND_F",
    on_sequence: Callable[[str], None] | None = None,
    plan: tuple[list[str], dict[str, dict]] | None = None,
) -> tuple[dict, pd.DataFrame, Path]:
    """Runs a full local DavisInteractiveSession; `predict` answers every interaction. `plan`: the
    result of plan_tables when the caller checked the folder already.

    Returns the official summary (also written to OUT/summary.json), the session's report
    (one row per interaction, object and frame) and the path of the report CSV it wrote."""
    from davisinteractive.session import DavisInteractiveSession

    if metric not in METRICS:
        raise StmError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
    logging.getLogger("absl").setLevel(logging.WARNING)  # the library logs every step at INFO
    root, output = Path(root), Path(output)
    chosen, entries = plan or plan_tables(root, subset, sequences)
    if entries:
        log.info("registering %d sequences from %s with davisinteractive", len(entries), root)
    else:
        log.info("every sequence matches the DAVIS 2017 tables: challenge protocol")
    output.mkdir(parents=True, exist_ok=True)
    with registered(subset, chosen, entries), deterministic_skeletons():
        session = DavisInteractiveSession(
            host="localhost",
            davis_root=str(root),
            subset=subset,
            max_time=max_time,
            max_nb_interactions=max_interactions,
            metric_to_optimize=metric,
            report_save_dir=str(output),
        )
        with session:
            while session.next():
                sequence, scribbles, new_sequence = session.get_scribbles(only_last=True)
                if new_sequence and on_sequence is not None:
                    on_sequence(sequence)
                objects = _davis().dataset[sequence]["num_objects"]
                session.submit_masks(predict(sequence, scribbles, new_sequence, objects))
        summary = session.get_global_summary(save_file=str(output / "summary.json"))
        report = session.get_report()
    return summary, report, output / f"{session.report_name}.csv"


def interaction_seconds(report: pd.DataFrame) -> pd.Series:
    """Seconds the model took for each (sequence, scribble_idx, interaction), as the session timed it."""
    return report.astype({"timing": float}).groupby(["sequence", "scribble_idx", "interaction"])["timing"].first()


def per_sequence_table(report: pd.DataFrame) -> pd.DataFrame:
    """Mean J&F (over objects and frames) of each sequence after each interaction, and the mean
    seconds per interaction; one row per sequence."""
    report = report.astype({"interaction": int, "j_and_f": float, "timing": float})
    scores = report.pivot_table(index="sequence", columns="interaction", values="j_and_f", aggfunc="mean")
    scores.columns = [f"J&F@{column}" for column in scores.columns]
    timing = interaction_seconds(report).groupby("sequence").mean()
    table = scores.assign(seconds_per_interaction=timing)
    return table.reset_index()


@functools.cache
def _robot():
    """The library's robot with the parameters the evaluation service gives it (kernel size 0.2, not the
    class default 0.15)."""
    from davisinteractive.evaluation.service import ROBOT_DEFAULT_PARAMETERS
    from davisinteractive.robot import InteractiveScribblesRobot

    logging.getLogger("absl").setLevel(logging.WARNING)  # the robot logs every call at INFO
    return InteractiveScribblesRobot(**ROBOT_DEFAULT_PARAMETERS)


def robot_scribbles(
    truth: np.ndarray, prediction: np.ndarray, frame: int, num_objects: int, sequence: str = ""
) -> dict:
    """The robot's correction of `prediction` on `frame` as DAVIS scribble JSON. truth, prediction: object
    ids [T, H, W]. For every id (0 = background) the robot opens the region where that id is really there
    but not predicted, takes its medial axis and draws the longest path of each connected part as one
    stroke labelled with that id. Only `frame` is handed to the robot, which looks at nothing else."""
    one = slice(frame, frame + 1)
    with deterministic_skeletons():
        scribbles = _robot().interact(sequence, prediction[one], truth[one], nb_objects=num_objects, frame=0)
    strokes: list[list] = [[] for _ in range(len(truth))]
    strokes[frame] = scribbles["scribbles"][0]
    return {"scribbles": strokes, "sequence": sequence}


def protocol_scores(truth: np.ndarray, prediction: np.ndarray, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """J and F [T frames, N objects] of one interaction's prediction, as the evaluation service scores it
    (every frame; an object absent from both truth and prediction scores 1)."""
    from davisinteractive.metrics import batched_f_measure, batched_jaccard

    j = batched_jaccard(truth, prediction, average_over_objects=False, nb_objects=num_objects)
    f = batched_f_measure(truth, prediction, average_over_objects=False, nb_objects=num_objects)
    return j, f


def next_frame(j: np.ndarray, f: np.ndarray, used: set[int]) -> int:
    """The frame the service asks to correct next: the worst J&F (mean over objects) among the frames the
    robot has not corrected yet (among all frames once every one was). j, f: [T, N]."""
    metric = (0.5 * j + 0.5 * f).mean(axis=1)
    candidates = set(range(len(metric))) - used or set(range(len(metric)))
    return int(next(index for index in metric.argsort() if index in candidates))


def play_protocol(
    predict: Callable[[dict], np.ndarray], truth: np.ndarray, first: dict, rounds: int, sequence: str = ""
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Plays `rounds` interactions of the DAVIS protocol on one video in process, as DavisInteractiveSession
    plays them without a time limit: `first` (DAVIS scribble JSON, the video's Scribbles/<seq>/001.json)
    is the first interaction; after each, the prediction is scored and the robot corrects the frame the
    service would choose. predict(scribbles of this interaction) -> object ids [T, H, W] at the size of
    `truth` (object ids [T, H, W]). Returns (J, F) per interaction, each [T frames, N objects]."""
    num_objects = int(truth.max())
    scribbles, used, results = first, set(), []
    for index in range(rounds):
        prediction = predict(scribbles)
        j, f = protocol_scores(truth, prediction, num_objects)
        results.append((j, f))
        if index + 1 < rounds:
            frame = next_frame(j, f, used)
            used.add(frame)
            scribbles = robot_scribbles(truth, prediction, frame, num_objects, sequence)
    return results


def interaction_auc(scores: Sequence[float]) -> float:
    """Area under J&F against the number of interactions, from (0, 0) through each interaction, divided by
    the number of interactions: the service's AUC when every interaction takes the same time and there is
    no time limit (its curve starts at 0 and ends at the last interaction)."""
    curve = np.concatenate([[0.0], np.asarray(scores, dtype=np.float64)])
    return float(((curve[1:] + curve[:-1]) / 2).sum() / len(scores))
