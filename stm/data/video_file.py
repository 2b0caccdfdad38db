"""Video files through PyAV: frames read lazily by index, and frames written as an H.264 mp4.

Opening reads the container's packets once (no decoding) to learn every frame's presentation
timestamp and where the keyframes are, then decodes the first frame to check the file. A frame is
decoded on request: reading forward continues the running decoder; a jump seeks to the keyframe at
or before the frame and decodes from there. Decoded frames stay in a small cache, so reading
backward decodes each group of pictures about once per cache-full instead of once per frame.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stm.data.io import atomic_write
from stm.errors import StmError

CACHE_BYTES = 64 * 2**20  # decoded frames kept for backward reads (52 at 480p, 128 at most)


class VideoFileFrames:
    """len(), [index] -> HxWx3 uint8 RGB, `size` (H, W), `name(index)` for messages. Safe to read from
    several threads (one lock around the decoder)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise StmError(f"{self.path}: unreadable video ({_reason(exc)})") from None
        try:
            if not self._container.streams.video:
                raise StmError(f"{self.path}: no video stream in the file")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
            self._index_packets()
            self._lock = threading.Lock()
            self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
            self._decoder = None
            self._last = -1  # index of the frame the running decoder produced last
            self.size: tuple[int, int] | None = None
            self._cache_frames = 8
            first = self[0]
        except BaseException:
            self._container.close()
            raise
        self.size = first.shape[:2]
        self._cache_frames = int(min(128, max(8, CACHE_BYTES // first.nbytes)))

    def _index_packets(self) -> None:
        pts, keys = [], []
        try:
            for packet in self._container.demux(self._stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or stamp is None:  # flush packets
                    continue
                pts.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
        except av.FFmpegError as exc:
            raise StmError(f"{self.path}: unreadable video ({_reason(exc)})") from None
        if not pts:
            raise StmError(f"{self.path}: the video has no frames")
        self._pts = sorted(set(pts))
        self._index = {stamp: index for index, stamp in enumerate(self._pts)}
        self._keyframes = sorted(self._index[k] for k in set(keys)) or [0]

    def __len__(self) -> int:
        return len(self._pts)

    def name(self, index: int) -> str:
        return f"{self.path} frame {index}"

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside the video (0..{len(self) - 1})")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            keyframe = self._keyframes[bisect.bisect_right(self._keyframes, index) - 1]
            if self._decoder is None or not (keyframe <= self._last + 1 and index > self._last):
                self._seek(keyframe)
            return self._decode_until(index)

    def _seek(self, keyframe: int) -> None:
        self._container.seek(self._pts[keyframe], stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._last = -1

    def _decode_until(self, index: int) -> np.ndarray:
        try:
            for frame in self._decoder:
                stamp = frame.pts if frame.pts is not None else frame.dts
                position = self._index.get(stamp)
                if position is None:
                    continue
                self._last = position
                rgb = frame.to_ndarray(format="rgb24")
                if self.size is not None and rgb.shape[:2] != self.size:
                    raise StmError(
                        f"{self.name(position)}: frame is {rgb.shape[1]}x{rgb.shape[0]}, the video's first "
                        f"frame is {self.size[1]}x{self.size[0]}"
                    )
                self._cache[position] = rgb
                if len(self._cache) > self._cache_frames:
                    self._cache.popitem(last=False)
                if position >= index:
                    break
        except av.FFmpegError as exc:
            self._decoder = None
            raise StmError(f"{self.name(index)}: cannot be decoded ({_reason(exc)})") from None
        if index not in self._cache:
            self._decoder = None
            raise StmError(f"{self.name(index)}: cannot be decoded (the decoder skipped it)")
        return self._cache[index]

    def close(self) -> None:
        self._container.close()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 24.0, crf: int = 18) -> int:
    """HxWx3 uint8 RGB frames as an H.264 video (format from the suffix), atomically; returns the count.
    crf: x264 quality (0 lossless, 18 visually lossless). Odd sizes keep full-resolution colour."""

    def write(temporary: str) -> None:
        nonlocal count
        with av.open(temporary, "w", format=Path(path).suffix.lstrip(".") or None) as container:
            stream = None
            for frame in frames:
                if stream is None:
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p" if frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0 else "yuv444p"
                    stream.options = {"crf": str(crf)}
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
                count += 1
            if stream is None:
                raise StmError(f"{path}: no frames to write")
            container.mux(stream.encode())

    count = 0
    atomic_write(Path(path), write)
    return count


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
