"""An annotation workspace on disk: everything a person made, saved as it is made.

    <workspace>/state.json          the video it belongs to, objects (id, name, colour), frames annotated
                                    by hand (the model never overwrites them) and frames scribbled on
    <workspace>/masks/00000.png     one DAVIS palette PNG per frame, written the moment it changes
    <workspace>/interactions.jsonl  every interaction, one JSON object a line, appended and fsynced
    <workspace>/export/             masks.zip (Annotations/00000.png ...) and overlay.mp4

Every file is replaced atomically (stm.data.io.atomic_write), so a crash or a failed propagation never
leaves half a mask, and reopening the folder restores the session exactly. A frame without a PNG has
no objects yet.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stm.data.io import DAVIS_PALETTE, atomic_write, read_mask, write_mask
from stm.errors import StmError
from stm.evaluation.writers import OverlayVideo, zip_submission

FORMAT = 1
_PALETTE = np.frombuffer(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3)


def default_colour(object_id: int) -> str:
    """The DAVIS palette colour of an id as #rrggbb (the colour its PNG shows in any viewer)."""
    return "#" + bytes(_PALETTE[object_id]).hex()


def parse_colour(colour: str) -> str:
    """#rrggbb in lower case; StmError for anything else."""
    text = str(colour).strip().lower()
    if len(text) != 7 or text[0] != "#" or any(c not in "0123456789abcdef" for c in text[1:]):
        raise StmError(f"colour {colour!r} is not #rrggbb")
    return text


@dataclass
class ObjectInfo:
    id: int
    name: str
    colour: str  # #rrggbb, shown in the page and the overlay video (the PNGs keep the DAVIS palette)


class Workspace:
    """The folder of one video's annotation. Opening a folder made for another video (other frame
    count or size) is an error, so two videos never mix their masks."""

    def __init__(self, root: str | os.PathLike, video: str, num_frames: int, height: int, width: int):
        self.root = Path(root)
        self.video, self.num_frames, self.height, self.width = video, num_frames, height, width
        self.objects: dict[int, ObjectInfo] = {}
        self.annotated: set[int] = set()
        self.scribbled: set[int] = set()
        self.masks = self.root / "masks"
        self.log_path = self.root / "interactions.jsonl"
        self.export_dir = self.root / "export"
        try:
            self.masks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StmError(
                f"{self.root}: cannot create the workspace here ({exc.strerror}); choose --workspace"
            ) from None
        if (self.root / "state.json").is_file():
            self._load()
        else:
            self.save_state()

    # state -------------------------------------------------------------------------------------
    def _load(self) -> None:
        path = self.root / "state.json"
        try:
            state = json.loads(path.read_text())
            frames, height, width = int(state["frames"]), int(state["height"]), int(state["width"])
            objects = [ObjectInfo(int(o["id"]), str(o["name"]), parse_colour(o["colour"])) for o in state["objects"]]
            annotated = {int(i) for i in state["annotated"]}
            scribbled = {int(i) for i in state.get("scribbled", [])}
        except (OSError, ValueError, KeyError, TypeError, StmError) as exc:
            raise StmError(f"{path}: not a readable workspace state ({exc})") from None
        if (frames, height, width) != (self.num_frames, self.height, self.width):
            raise StmError(
                f"{self.root}: this workspace belongs to a video of {frames} frames at {width}x{height} "
                f"({state.get('video')}), not {self.num_frames} frames at {self.width}x{self.height}"
            )
        self.objects = {o.id: o for o in objects}
        self.annotated, self.scribbled = annotated, scribbled

    def save_state(self) -> None:
        state = {
            "format": FORMAT,
            "video": self.video,
            "frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            "objects": [asdict(o) for o in sorted(self.objects.values(), key=lambda o: o.id)],
            "annotated": sorted(self.annotated),
            "scribbled": sorted(self.scribbled),
        }
        text = json.dumps(state, indent=1)
        atomic_write(self.root / "state.json", lambda tmp: Path(tmp).write_text(text))

    def palette(self) -> np.ndarray:
        """uint8 [256, 3]: the objects' chosen colours over the DAVIS palette."""
        palette = _PALETTE.copy()
        for info in self.objects.values():
            palette[info.id] = np.frombuffer(bytes.fromhex(info.colour[1:]), dtype=np.uint8)
        return palette

    # masks -------------------------------------------------------------------------------------
    def mask_path(self, index: int) -> Path:
        self.check_frame(index)
        return self.masks / f"{index:05d}.png"

    def check_frame(self, index: int) -> None:
        if not 0 <= index < self.num_frames:
            raise StmError(f"frame {index} is outside the video (0..{self.num_frames - 1})")

    def labels(self, index: int) -> np.ndarray:
        """uint8 [H, W] object ids of a frame (zeros before anything was drawn or propagated)."""
        path = self.mask_path(index)
        if not path.is_file():
            return np.zeros((self.height, self.width), dtype=np.uint8)
        labels = read_mask(path)
        if labels.shape != (self.height, self.width):
            raise StmError(f"{path}: mask is {labels.shape[1]}x{labels.shape[0]}, the video {self.width}x{self.height}")
        return labels

    def write_labels(self, index: int, labels: np.ndarray) -> None:
        if labels.shape != (self.height, self.width):
            raise ValueError(f"labels {labels.shape} for a {self.height}x{self.width} video")
        write_mask(self.mask_path(index), labels.astype(np.uint8))

    def frames_with_masks(self) -> list[int]:
        return sorted(int(p.stem) for p in self.masks.glob("[0-9]*.png") if p.stem.isdigit())

    # the interaction log ---------------------------------------------------------------------------
    def log(self, entry: dict) -> dict:
        """Appends one interaction (with its time) as a JSON line, flushed to the disk before returning."""
        entry = {"time": time.time(), **entry}
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with open(self.log_path, "a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())
        return entry

    def read_log(self) -> list[dict]:
        return read_log(self.log_path)

    # export ------------------------------------------------------------------------------------
    def export(self, frames: Iterable[np.ndarray], fps: float) -> tuple[Path, Path]:
        """Writes export/masks.zip (a PNG for every frame; empty where nothing was drawn) and
        export/overlay.mp4 (the masks over the frames in the objects' colours, H.264 that browsers
        play). frames: the video's RGB frames in order; fps: the video's rate."""
        for index in range(self.num_frames):
            if not self.mask_path(index).is_file():
                self.write_labels(index, np.zeros((self.height, self.width), np.uint8))
        archive, video = self.export_dir / "masks.zip", self.export_dir / "overlay.mp4"
        zip_submission(self.masks, archive)
        with OverlayVideo(video, fps=fps, palette=self.palette()) as writer:
            for index, frame in enumerate(frames):
                writer.add(frame, self.labels(index))
        return archive, video


def read_log(path: str | os.PathLike) -> list[dict]:
    """The entries of an interactions.jsonl; StmError naming the line that is not JSON. A last line cut
    short by a crash is skipped (the entries before it are whole, each was fsynced)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StmError(f"{path}: cannot read the interaction log ({exc.strerror})") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise StmError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(entry, dict) or "action" not in entry:
            raise StmError(f"{path}:{number}: an interaction needs an 'action'")
        entries.append(entry)
    return entries
