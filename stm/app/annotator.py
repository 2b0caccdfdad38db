"""The session of one person annotating one video: hand edits, undo, objects, and propagation through
`stm.VideoPredictor`. The server and scripts/replay_interactions.py drive this same class, so a
replayed log goes through exactly the code the person's clicks went through.

Rules:
- A frame painted by hand (brush, eraser, polygon), or one a propagation starts from, is *annotated*:
  the model never overwrites it, and it is given to the predictor as a mask before each propagation.
- Every change is in the workspace (a PNG, state.json) before the call returns, and every interaction
  is a line of interactions.jsonl.
- One long operation at a time: while a propagation runs, edits are refused (it would overwrite them).
- The app makes no model decision: which frames are memorised, how masks travel, how scribbles steer,
  is the predictor's.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stm.app.strokes import PAINT_TOOLS, SCRIBBLE_TOOLS, Stroke, paint, stroke_pixels
from stm.app.workspace import ObjectInfo, Workspace, default_colour, parse_colour
from stm.data.frames import Frames
from stm.errors import StmError

UNDO_LIMIT = 200  # hand edits kept for undo (compressed, a few kB each)


class Busy(StmError):
    """An edit arrived while a propagation was running."""


@dataclass
class _Edit:
    """One hand edit of one frame, as compressed before/after id maps."""

    frame: int
    before: bytes
    after: bytes
    was_annotated: bool


def _pack(labels: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1)


class Annotator:
    """workspace: where everything is kept; frames: the video's frame source (stm.data.frames: len, [i]
    decoded on demand, fps); source: what the predictors open (path, folder or frames); semi /
    interactive: a VideoPredictor of each kind, or None when that model is not loaded."""

    def __init__(self, workspace: Workspace, frames: Frames, source, semi=None, interactive=None):
        self.workspace = workspace
        self.frames = frames
        self.source = source
        self.semi = semi
        self.interactive = interactive
        self.lock = threading.RLock()
        self.busy: str | None = None  # the long operation running now, if any
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self._semi_video = None
        self._interactive_video = None
        self._to_give: set[int] = set()  # frames edited by hand since the semi predictor last heard of them
        self._given: set[int] = set()  # frames the semi predictor holds a hand-made mask for

    # what the page shows -----------------------------------------------------------------------
    def info(self) -> dict:
        ws = self.workspace
        with self.lock:
            return {
                "video": ws.video,
                "frames": ws.num_frames,
                "width": ws.width,
                "height": ws.height,
                "fps": self.frames.fps,
                "objects": [vars(o) for o in sorted(ws.objects.values(), key=lambda o: o.id)],
                "annotated": sorted(ws.annotated),
                "scribbled": sorted(ws.scribbled),
                "tools": list(PAINT_TOOLS + (SCRIBBLE_TOOLS if self.interactive is not None else ())),
                "propagation": self.semi is not None,
                "can_undo": bool(self._undo),
                "can_redo": bool(self._redo),
                "busy": self.busy,
                "workspace": str(ws.root),
            }

    def labels(self, index: int) -> np.ndarray:
        return self.workspace.labels(index)

    # objects -----------------------------------------------------------------------------------
    def add_object(self, colour: str | None = None, name: str | None = None) -> ObjectInfo:
        with self.lock:
            ws = self.workspace
            free = [i for i in range(1, 256) if i not in ws.objects]
            if not free:
                raise StmError("a palette PNG holds at most 255 objects")
            object_id = free[0]
            info = ObjectInfo(
                object_id, name or f"Object {object_id}", parse_colour(colour or default_colour(object_id))
            )
            ws.objects[object_id] = info
            ws.save_state()
            ws.log({"action": "add_object", "object": object_id, "name": info.name, "colour": info.colour})
            return info

    def recolour(self, object_id: int, colour: str) -> ObjectInfo:
        with self.lock:
            info = self._object(object_id)
            info.colour = parse_colour(colour)
            self.workspace.save_state()
            self.workspace.log({"action": "recolour", "object": object_id, "colour": info.colour})
            return info

    def rename(self, object_id: int, name: str) -> ObjectInfo:
        with self.lock:
            info = self._object(object_id)
            info.name = str(name).strip()[:80] or info.name
            self.workspace.save_state()
            self.workspace.log({"action": "rename", "object": object_id, "name": info.name})
            return info

    def delete_object(self, object_id: int) -> list[int]:
        """Removes the object from every frame (and from the predictors). Returns the frames changed.
        Undo history is cleared: its edits may hold the deleted object."""
        with self.lock:
            self._check_idle()
            self._object(object_id)
            ws = self.workspace
            changed = []
            for index in ws.frames_with_masks():
                labels = ws.labels(index)
                if np.any(labels == object_id):
                    ws.write_labels(index, np.where(labels == object_id, 0, labels).astype(np.uint8))
                    changed.append(index)
            del ws.objects[object_id]
            ws.save_state()
            for video in (self._semi_video, self._interactive_video):
                if video is not None and object_id in video.objects:
                    video.remove_object(object_id)
            self._given = {i for i in self._given if ws.labels(i).any()}  # the predictor drops emptied masks
            self._undo.clear()
            self._redo.clear()
            ws.log({"action": "delete_object", "object": object_id})
            return changed

    def _object(self, object_id: int) -> ObjectInfo:
        info = self.workspace.objects.get(int(object_id))
        if info is None:
            raise StmError(f"no object {object_id}; add it first")
        return info

    # hand edits --------------------------------------------------------------------------------
    def stroke(self, stroke: Stroke) -> None:
        """A brush, eraser or polygon stroke: edits one frame's mask, marks it annotated, keeps undo."""
        if stroke.tool not in PAINT_TOOLS:
            raise StmError(f"{stroke.tool} strokes steer the interactive model: use scribble()")
        with self.lock:
            self._check_idle()
            self.workspace.check_frame(stroke.frame)
            self._object(stroke.object_id)
            before = self.workspace.labels(stroke.frame)
            after = paint(before, stroke)
            was_annotated = stroke.frame in self.workspace.annotated
            self._set(stroke.frame, after, annotated=True)
            self._undo.append(_Edit(stroke.frame, _pack(before), _pack(after), was_annotated))
            del self._undo[:-UNDO_LIMIT]
            self._redo.clear()
            self.workspace.log(stroke.to_dict())

    def undo(self) -> int:
        """Restores the frame of the last hand edit; returns that frame."""
        with self.lock:
            self._check_idle()
            if not self._undo:
                raise StmError("nothing to undo")
            edit = self._undo.pop()
            self._set(edit.frame, self._unpack(edit.before), annotated=edit.was_annotated)
            self._redo.append(edit)
            self.workspace.log({"action": "undo", "frame": edit.frame})
            return edit.frame

    def redo(self) -> int:
        with self.lock:
            self._check_idle()
            if not self._redo:
                raise StmError("nothing to redo")
            edit = self._redo.pop()
            self._set(edit.frame, self._unpack(edit.after), annotated=True)
            self._undo.append(edit)
            self.workspace.log({"action": "redo", "frame": edit.frame})
            return edit.frame

    def _unpack(self, data: bytes) -> np.ndarray:
        ws = self.workspace
        return np.frombuffer(zlib.decompress(data), dtype=np.uint8).reshape(ws.height, ws.width)

    def _set(self, index: int, labels: np.ndarray, annotated: bool) -> None:
        """Writes a hand-made mask; the predictor hears of it before the next propagation."""
        ws = self.workspace
        ws.write_labels(index, labels)
        if annotated != (index in ws.annotated):
            (ws.annotated.add if annotated else ws.annotated.discard)(index)
            ws.save_state()
        self._to_give.add(index)

    def _claim(self, operation: str) -> None:
        """Marks the start of a long operation (the first step of its iterator)."""
        with self.lock:
            self._check_idle()
            self.busy = operation

    def _check_idle(self) -> None:
        if self.busy:
            raise Busy(f"{self.busy} is running: wait for it or cancel it first")

    # propagation -------------------------------------------------------------------------------
    def expected_frames(self, frame: int, reverse: bool) -> int:
        """How many frames a propagation from `frame` rewrites at most (for the progress bar)."""
        return frame if reverse else self.workspace.num_frames - 1 - frame

    def propagate(self, frame: int, reverse: bool = False) -> Iterator[int]:
        """Checks and prepares a propagation from `frame` (forward, or backward with reverse) and returns
        an iterator that runs it: each step writes one frame's mask and yields its index. Frames
        annotated by hand are kept as they are. Closing the iterator early (cancel) keeps the frames
        already written, and the log says how many."""
        with self.lock:
            self._check_idle()
            if self.semi is None:
                raise StmError("no propagation model is loaded (start annotate.py with --weights)")
            ws = self.workspace
            ws.check_frame(frame)
            if not ws.labels(frame).any():
                raise StmError(f"frame {frame} has no object to propagate: paint one first")
            if frame not in ws.annotated:
                ws.annotated.add(frame)  # the frame a propagation starts from is kept as a reference
                ws.save_state()
                self._to_give.add(frame)
            video = self._semi_engine()
        return self._run_propagation(video, frame, reverse)

    def _semi_engine(self):
        """The predictor's video, holding every annotated frame's current mask. A hand-made mask speaks
        for every object: one missing from it is absent from that frame."""
        ws = self.workspace
        if self._semi_video is None:
            self._semi_video = self.semi.open(self.source)
            self._given.clear()
            self._to_give = set(ws.annotated)
        for index in sorted(self._to_give):
            labels = ws.labels(index)
            if index in ws.annotated and labels.any():
                self._semi_video.add_mask(index, labels, objects=sorted(ws.objects))
                self._given.add(index)
            elif index in self._given:  # undone, or wiped by hand: no longer a given mask
                self._semi_video.remove_mask(index)
                self._given.discard(index)
        self._to_give.clear()
        return self._semi_video

    def _run_propagation(self, video, frame: int, reverse: bool) -> Iterator[int]:
        started, written, outcome = time.time(), 0, "done"
        self._claim("a propagation")
        try:
            for result in video.propagate(start=frame, reverse=reverse):
                if result.index == frame:
                    continue
                with self.lock:
                    if result.index not in self.workspace.annotated:
                        self.workspace.write_labels(result.index, result.labels)
                written += 1
                yield result.index
        except GeneratorExit:
            outcome = "cancelled"
            raise
        except BaseException as exc:
            outcome = f"failed: {exc}"
            self._semi_video = None  # its state is unknown after a failure
            raise
        finally:
            with self.lock:
                self.busy = None
                entry = {"action": "propagate", "frame": frame, "reverse": reverse, "frames": written}
                entry |= {"outcome": outcome, "seconds": round(time.time() - started, 3)}
                self.workspace.log(entry)

    # export ----------------------------------------------------------------------------------------
    def export(self) -> tuple[Path, Path]:
        """Writes the workspace's export/masks.zip and export/overlay.mp4 (not during a propagation)."""
        self._claim("an export")
        try:
            ws = self.workspace
            written = ws.export((self.frames[i] for i in range(ws.num_frames)), self.frames.fps)
            ws.log({"action": "export"})
            return written
        finally:
            with self.lock:
                self.busy = None

    # scribbles (interactive model) -----------------------------------------------------------------
    def scribble(self, stroke: Stroke) -> Iterator[int]:
        """A positive or negative scribble for the interactive model, which re-segments the video;
        returns an iterator that writes each re-segmented frame (annotated frames are kept)."""
        if stroke.tool not in SCRIBBLE_TOOLS:
            raise StmError(f"{stroke.tool} strokes paint masks: use stroke()")
        with self.lock:
            self._check_idle()
            if self.interactive is None:
                raise StmError("no interactive model is loaded (start annotate.py with --interactive-weights)")
            ws = self.workspace
            ws.check_frame(stroke.frame)
            self._object(stroke.object_id)
            if self._interactive_video is None:
                self._interactive_video = self.interactive.open(self.source)
            pixels = stroke_pixels(stroke, ws.height, ws.width)
            empty = np.zeros_like(pixels)
            positive, negative = (pixels, empty) if stroke.tool == "positive" else (empty, pixels)
            if stroke.frame not in ws.scribbled:
                ws.scribbled.add(stroke.frame)
                ws.save_state()
            ws.log(stroke.to_dict())
        return self._run_scribble(stroke, positive, negative)

    def _run_scribble(self, stroke: Stroke, positive: np.ndarray, negative: np.ndarray) -> Iterator[int]:
        self._claim("a scribble re-segmentation")
        try:
            video = self._interactive_video
            video.add_scribbles(stroke.frame, stroke.object_id, positive, negative)  # re-segments every frame
            for index in range(len(video)):
                with self.lock:
                    if index not in self.workspace.annotated:
                        self.workspace.write_labels(index, video.labels(index))
                yield index
        except GeneratorExit:  # cancelled: the predictor has every scribble, the workspace some frames
            raise
        except BaseException:
            self._interactive_video = None  # its state is unknown after a failure
            raise
        finally:
            with self.lock:
                self.busy = None
