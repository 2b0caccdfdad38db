"""Turns any DAVIS-layout folder into one the DAVIS robot accepts (Scribbles/<seq>/001.json).

DAVIS ships, for each sequence, the first interaction's scribbles: strokes drawn on one frame, one
inside each object and one on the background. We synthesise the same from the ground truth of one
frame (the one where the least visible object is largest) with `stm.data.scribbles.first_scribbles`. Annotations are
rewritten as palette PNGs of object ids numbered 00000.png.. (the robot reads raw PNG indices, so
DAVIS 2016 style 0/255 masks would not work), optionally resized, and ImageSets/2017/<subset>.txt
lists the sequences.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from stm.data.io import (
    atomic_write,
    davis_sequence,
    davis_sequence_names,
    read_frame,
    read_mask,
    write_frame,
    write_mask,
)
from stm.data.scribbles import first_scribbles
from stm.errors import StmError

log = logging.getLogger("stm")


def convert_sequence(source: Path, target: Path, name: str, scale: float, seed: int) -> None:
    sequence = davis_sequence(source, name)
    absent = [index for index in range(len(sequence)) if index not in sequence.masks]
    if absent:
        raise StmError(
            f"{source / 'Annotations' / '480p' / name}: no annotation for frame {sequence.frames[absent[0]].name}"
        )
    labels = []
    for index, frame_path in enumerate(sequence.frames):
        frame, mask = read_frame(frame_path), read_mask(sequence.masks[index])
        if scale != 1:
            size = (max(16, round(frame.shape[1] * scale)), max(16, round(frame.shape[0] * scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        write_frame(target / "JPEGImages" / "480p" / name / f"{index:05d}.jpg", frame)
        write_mask(target / "Annotations" / "480p" / name / f"{index:05d}.png", mask)
        labels.append(mask)
    labels = np.stack(labels)
    if labels.max() == 0:
        raise StmError(f"{source / 'Annotations' / '480p' / name}: no object in any annotation")
    scribbles = first_scribbles(name, labels, seed)
    path = target / "Scribbles" / name / "001.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(scribbles)))


def make_interactive_root(
    source: str | os.PathLike,
    target: str | os.PathLike,
    sequences: list[str] | None = None,
    subset: str = "val",
    scale: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Writes a robot-ready copy of `source` (DAVIS layout) into `target`; returns the sequences."""
    source, target = Path(source), Path(target)
    if source.resolve() == target.resolve():
        raise StmError(f"{target}: the output must be a new folder, not the source")
    if not 0 < scale <= 1:
        raise StmError(f"scale {scale}: must be in (0, 1]")
    names = davis_sequence_names(source, split=subset, names=sequences)
    for name in names:
        convert_sequence(source, target, name, scale, seed)
        log.info("%s: written with its first scribbles", name)
    listing = target / "ImageSets" / "2017" / f"{subset}.txt"
    atomic_write(listing, lambda tmp: Path(tmp).write_text("".join(f"{name}\n" for name in names)))
    return names
