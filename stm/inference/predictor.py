"""VideoPredictor: segment any video from masks or scribbles on any frame.

    predictor = VideoPredictor.from_weights("checkpoints/demo/latest.pth")   # size=None: the trained size
    video = predictor.open("clip.mp4")          # a video file, a folder of frames, or a list of HxWx3 uint8
    video.add_mask(0, labels)                   # HxW ids at the video's size; 0 = background
    for result in video.propagate():            # forward from the first annotated frame
        result.index, result.labels, result.done, result.total
    video.add_mask(40, corrected)
    for result in video.propagate(start=40): ...                # rewrites frames after 40 only
    for result in video.propagate(start=40, reverse=True): ...  # backward: frames before 40 only
    video.save("out/")                          # palette PNGs 00000.png ...

A propagation is one SemiSupervisedSession run over the frames from `start` (forward or backward):
the start frame is given with its current labels, every hand-annotated frame on the way is given
(protected in memory), and the hand-annotated frames behind the start are remembered first, so a
correction keeps all earlier annotations in memory while it rewrites only the frames after it. An
interactive checkpoint segments from scribbles instead (`add_scribbles`, InteractiveSession).

Per frame the video keeps only its labels (uint8 at the video's size, zlib-compressed: a few KB for
a 480p frame), never probabilities, so long videos stay small; frames are decoded when needed.
Results are stored before they are yielded: a consumer that stops iterating (cancel) leaves every
frame either fully updated or untouched.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from stm.data.frames import Frames, open_frames
from stm.data.io import VOID, without_void, write_mask
from stm.errors import StmError
from stm.inference.scribble_video import ScribbleVideo
from stm.inference.semi import SemiSupervisedSession
from stm.inference.working_size import describe_size, resolve_size
from stm.model.checkpoint import load_model, recorded_size, recorded_thickness
from stm.model.frozen import freeze_for_inference
from stm.model.stm import STM
from stm.precision import autocast, autocast_dtype

log = logging.getLogger("stm")


@dataclass
class PropagationResult:
    """One frame rewritten by a propagation. probs: [1 + K, H, W] float32 at the video's size,
    background first, objects in `ids` order; done / total: progress of this propagation."""

    index: int
    labels: np.ndarray  # [H, W] uint8 object ids at the video's size
    probs: Tensor
    ids: list[int]
    done: int
    total: int


@dataclass
class _Annotation:
    labels: np.ndarray  # uint8 [H, W], as given
    objects: tuple[int, ...]  # the ids it speaks for (absent ones are absent on that frame)


class _LabelStore:
    """Per-frame uint8 label maps, zlib-compressed; None for frames never segmented."""

    def __init__(self, length: int, size: tuple[int, int]):
        self.size = tuple(size)
        self._data: list[bytes | None] = [None] * length

    def get(self, index: int) -> np.ndarray | None:
        data = self._data[index]
        if data is None:
            return None
        return np.frombuffer(zlib.decompress(data), dtype=np.uint8).reshape(self.size).copy()

    def set(self, index: int, labels: np.ndarray) -> None:
        self._data[index] = zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1)

    def clear(self, index: int) -> None:
        self._data[index] = None


class VideoPredictor:
    """A loaded model and how to run it. size: the short side the network runs at (an int, or None for
    each video's own size; `from_weights` resolves it from the checkpoint); mem_every,
    max_memory_frames, amp as in eval_semi; thickness: scribble width (working-size pixels) an
    interactive model trained with."""

    def __init__(
        self,
        model: nn.Module,
        size: int | None = None,
        mem_every: int = 5,
        max_memory_frames: int | None = None,
        amp: bool | str = False,
        channels_last: bool = False,
        thickness: int = 3,
    ):
        if mem_every < 1:
            raise StmError(f"mem_every {mem_every}: must be at least 1")
        if max_memory_frames is not None and max_memory_frames < 2:
            raise StmError(f"max_memory_frames {max_memory_frames}: must be at least 2 (the first and the previous)")
        self.model = model.eval()
        self.mode: str = getattr(model, "mode", "semi")
        self.size = resolve_size(size, None)
        self.mem_every = mem_every
        self.max_memory_frames = max_memory_frames
        self.amp = amp
        self.channels_last = channels_last
        self.thickness = thickness
        self.device = next(model.parameters()).device

    @classmethod
    def from_weights(
        cls,
        weights: str | os.PathLike | None,
        device: str = "cpu",
        amp: bool | str = False,
        size: int | str | None = None,
        mem_every: int = 5,
        max_memory_frames: int | None = None,
        mode: str = "semi",
        backbone: str = "resnet50",
    ) -> VideoPredictor:
        """Our checkpoint or the official STM_weights.pth (semi or interactive, as the weights say);
        None: a random-init `mode` model, with a warning. size: N, "native", or None for the size the
        checkpoint was trained at (native when it records none, as the official weights)."""
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise StmError(f"device {device}: no CUDA device is available")
        if weights is None:
            log.warning("no weights given: the model is randomly initialised, so the masks are meaningless")
            model, checkpoint = STM(mode, backbone).eval(), {}
        else:
            model, checkpoint = load_model(weights)
        # as eval_semi.py runs it: BatchNorm folded, channels-last, under --amp the weights cast once
        model = freeze_for_inference(model.eval(), device, True, autocast_dtype(torch.device(device), amp))
        working = resolve_size(size, recorded_size(checkpoint))
        log.info("working size: %s", describe_size(working))
        return cls(
            model, working, mem_every, max_memory_frames, amp, channels_last=True,
            thickness=recorded_thickness(checkpoint),
        )  # fmt: skip

    def open(self, source: str | os.PathLike | Sequence[np.ndarray] | np.ndarray) -> Video:
        """A video file (PyAV), a folder of frames, or a list of HxWx3 uint8 RGB frames."""
        return Video(self, open_frames(source))

    def autocast(self):
        return autocast(self.device, autocast_dtype(self.device, self.amp))


class Video:
    """One opened video and its annotations and results; made by `VideoPredictor.open`."""

    def __init__(self, predictor: VideoPredictor, frames: Frames):
        self.predictor = predictor
        self.frames = frames
        self.size: tuple[int, int] = tuple(frames.size)  # (height, width)
        self.fps: float = frames.fps  # a video file's rate; 24 for folders and arrays
        self._labels = _LabelStore(len(frames), self.size)
        self._given: dict[int, _Annotation] = {}
        self._objects: set[int] = set()
        self._scribbles = (
            ScribbleVideo(predictor, frames, self._labels) if predictor.mode == "interactive" else None
        )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def annotated(self) -> list[int]:
        """Frames annotated by hand (masks, or scribbles on an interactive checkpoint)."""
        return self._scribbles.frames_interacted() if self._scribbles else sorted(self._given)

    @property
    def objects(self) -> list[int]:
        return self._scribbles.ids if self._scribbles else sorted(self._objects)

    def frame(self, index: int) -> np.ndarray:
        """The RGB frame [H, W, 3] uint8."""
        return self.frames[self._check_frame(index)]

    def labels(self, index: int) -> np.ndarray:
        """Object ids [H, W] uint8 of a frame (zeros where nothing was segmented yet)."""
        labels = self._labels.get(self._check_frame(index))
        return np.zeros(self.size, dtype=np.uint8) if labels is None else labels

    def segmented(self, index: int) -> bool:
        return self._labels.get(self._check_frame(index)) is not None

    def add_mask(self, frame: int, labels: np.ndarray, objects: Sequence[int] | None = None) -> None:
        """Annotates `frame` by hand: labels [H, W] object ids at the video's size (0 background, 255
        void). It speaks for `objects` (default: the ids it contains; a listed id it lacks is absent
        from this frame); other objects stay predicted there. Replaces an earlier mask of the frame."""
        self._require("semi", "add_mask")
        frame = self._check_frame(frame)
        labels = self._check_mask(labels)
        objects = {int(i) for i in np.unique(labels) if i} | {int(i) for i in objects or ()}
        self._given[frame] = _Annotation(labels, tuple(sorted(objects)))
        self._objects.update(int(i) for i in np.unique(labels) if i)
        shown = self._labels.get(frame)
        if shown is not None:  # the objects it does not speak for keep their predicted pixels
            labels = np.where(labels > 0, labels, np.where(np.isin(shown, list(objects)), 0, shown))
        self._labels.set(frame, labels)

    def remove_mask(self, frame: int) -> None:
        """Forgets the hand-given mask of `frame` (its labels stay until a propagation rewrites them)."""
        self._given.pop(self._check_frame(frame), None)

    def propagate(self, start: int | None = None, reverse: bool = False) -> Iterator[PropagationResult]:
        """Segments the frames after `start` (before it when reverse) from the masks given so far and
        yields each as it is done, starting with `start` itself (unchanged). start: default the first
        annotated frame (the last one when reverse); it must have labels (given or propagated)."""
        self._require("semi", "propagate")
        if not self._given:
            raise StmError("no mask given yet: add_mask(frame, labels) first")
        if start is None:
            start = max(self._given) if reverse else min(self._given)
        start = self._check_frame(start)
        labels = self._labels.get(start)
        if labels is None or not labels.any():
            raise StmError(f"frame {start} has no mask to propagate from: give one with add_mask or propagate to it")
        return self._propagate(start, reverse, labels)

    def _propagate(self, start: int, reverse: bool, start_labels: np.ndarray) -> Iterator[PropagationResult]:
        p = self.predictor
        session = SemiSupervisedSession(p.model, p.mem_every, p.max_memory_frames, p.amp, p.channels_last, p.size)
        order = range(start, -1, -1) if reverse else range(start, len(self))
        behind = sorted((j for j in self._given if (j > start if reverse else j < start)), reverse=reverse)
        for index in behind:  # hand-annotated frames behind the start stay in memory
            session.remember(self.frames[index], self._labels.get(index))
        for done, index in enumerate(order, start=1):
            if index == start:  # its labels as they are: every object it lacks is absent there
                result = session.step(self.frames[index], start_labels, sorted(self._objects))
            elif index in self._given:
                given = self._given[index]
                result = session.step(self.frames[index], given.labels, list(given.objects))
            else:
                result = session.step(self.frames[index])
            labels = result.labels.astype(np.uint8, copy=False)
            self._labels.set(index, labels)
            yield PropagationResult(index, labels, result.probs, result.ids, done, len(order))

    def add_scribbles(
        self, frame: int, object_id: int, positive: np.ndarray | None = None, negative: np.ndarray | None = None
    ) -> None:
        """Interactive checkpoints: strokes on `frame` for `object_id` (bool [H, W] at the video's size;
        positive: this is the object, also a negative for every other object; negative: this is not
        it). Re-segments every frame from all interactions so far (the seed paper's interactive mode)."""
        self._require("interactive", "add_scribbles")
        frame = self._check_frame(frame)
        if not 1 <= int(object_id) <= 254:
            raise StmError(f"object id {object_id}: must be 1..254")
        maps = []
        for name, stroke in (("positive", positive), ("negative", negative)):
            if stroke is None:
                stroke = np.zeros(self.size, dtype=bool)
            stroke = np.asarray(stroke)
            if stroke.shape != self.size:
                raise StmError(f"{name} scribble is {_wxh(stroke.shape)} but the video is {_wxh(self.size)}")
            maps.append(stroke > 0)
        if not (maps[0].any() or maps[1].any()):
            raise StmError("the scribbles have no stroke (every pixel is 0)")
        self._scribbles.add(frame, int(object_id), maps[0], maps[1])

    def remove_object(self, object_id: int) -> None:
        """Deletes an object everywhere: its masks (a frame left with no object is no longer annotated),
        its labels on every frame, and on interactive checkpoints its scribbles (then re-segments)."""
        object_id = int(object_id)
        if object_id not in self.objects:
            raise StmError(f"no object {object_id} (objects: {', '.join(map(str, self.objects)) or 'none'})")
        if self._scribbles:
            self._scribbles.remove(object_id)
            return
        for frame, given in list(self._given.items()):
            labels = np.where(given.labels == object_id, 0, given.labels).astype(np.uint8)
            objects = tuple(i for i in given.objects if i != object_id)
            if labels.any():
                self._given[frame] = _Annotation(labels, objects)
            else:
                del self._given[frame]
        self._objects.discard(object_id)
        for index in range(len(self)):
            labels = self._labels.get(index)
            if labels is not None and (labels == object_id).any():
                self._labels.set(index, np.where(labels == object_id, 0, labels))

    def save(self, folder: str | os.PathLike) -> None:
        """Every frame's labels as a DAVIS-palette PNG, folder/00000.png ... (each written atomically)."""
        folder = Path(folder)
        for index in range(len(self)):
            write_mask(folder / f"{index:05d}.png", self.labels(index))

    def close(self) -> None:
        self.frames.close()

    def _require(self, mode: str, call: str) -> None:
        if self.predictor.mode != mode:
            other = "add_scribbles" if mode == "semi" else "add_mask and propagate"
            raise StmError(f"{call} needs a {mode} checkpoint; this one is {self.predictor.mode} (use {other})")

    def _check_frame(self, frame: int) -> int:
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < len(self):
            raise StmError(f"frame {frame} is beyond the video ({len(self)} frames: 0..{len(self) - 1})")
        return int(frame)

    def _check_mask(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.shape != self.size:
            raise StmError(f"mask is {_wxh(labels.shape)} but the video is {_wxh(self.size)}")
        if labels.dtype != bool and not np.issubdtype(labels.dtype, np.integer):
            raise StmError(f"mask must hold integer object ids, not {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() > VOID):
            raise StmError(f"mask holds ids outside 0..255 ({labels.min()}..{labels.max()})")
        labels = without_void(labels).astype(np.uint8)
        if not labels.any():
            raise StmError("mask has no object (every pixel is background or void)")
        return labels


def _wxh(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else str(tuple(shape))
