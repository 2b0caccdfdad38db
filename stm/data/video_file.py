"""Video files through PyAV: frames read lazily by index, and the one writer of H.264 mp4s.

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

from stm.data.io import commit, partial_path
from stm.errors import StmError

DEFAULT_FPS = 24.0  # frames per second of a source that has none (a folder of frames, arrays): DAVIS's rate
CACHE_BYTES = 64 * 2**20  # decoded frames kept for backward reads (52 at 480p, 128 at most)


class VideoFileFrames:
    """len(), [index] -> HxWx3 uint8 RGB, `size` (H, W), `fps` (the stream's frame rate), `name(index)`
    for messages. Safe to read from several threads (one lock around the decoder)."""

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
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else DEFAULT_FPS  # the stream's frame rate
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


class VideoWriter:
    """The one mp4 writer: HxWx3 uint8 RGB frames streamed into an H.264 video (format from the suffix)
    under a temporary name, committed onto `path` by close() as stm.data.io.atomic_write commits
    (fsync, rename); a `with` block that raises removes the temporary file instead, so `path` only
    ever holds a whole video. The moov index is written first (faststart), so a browser can play the
    file before it has all of it.

    fps: frames per second (a video's `frames.fps`). crf: x264 quality (0 lossless, 18 visually
    lossless). for_browsers: yuv420p always, an odd width or height padded by repeating the last
    column or row (H.264 4:2:0 needs even sizes): what every browser plays inline; use it for
    viewing copies. Without it the frames keep their exact size (data for segment.py), in 4:4:4
    colour when a side is odd, which some players refuse."""

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, crf: int = 18, for_browsers: bool = False):
        if not fps > 0:
            raise StmError(f"{path}: frames per second must be positive, not {fps}")
        self.path = Path(path)
        self.fps, self.crf, self.for_browsers = fps, crf, for_browsers
        self.count = 0
        self._temporary: Path | None = None
        self._container = None
        self._stream = None

    def add(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise StmError(f"{self.path}: frame {self.count} is not HxWx3 uint8 RGB ({frame.dtype} {frame.shape})")
        if self.for_browsers and (frame.shape[0] % 2 or frame.shape[1] % 2):
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        if self._stream is None:
            self._open(*frame.shape[:2])
        elif frame.shape[:2] != (self._stream.height, self._stream.width):
            raise StmError(
                f"{self.path}: frame {self.count} is {frame.shape[1]}x{frame.shape[0]}, the first was "
                f"{self._stream.width}x{self._stream.height}"
            )
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        self._container.mux(self._stream.encode(image))
        self.count += 1

    def _open(self, height: int, width: int) -> None:
        self._temporary = partial_path(self.path)
        suffix = self.path.suffix.lstrip(".").lower() or None
        options = {"movflags": "+faststart"} if suffix in ("mp4", "mov", "m4v") else {}
        try:
            self._container = av.open(str(self._temporary), "w", format=suffix, options=options)
        except (av.FFmpegError, ValueError) as exc:
            self._temporary.unlink(missing_ok=True)
            raise StmError(f"{self.path}: cannot write a video of this kind ({_reason(exc)})") from None
        self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.height, self._stream.width = height, width
        self._stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        self._stream.options = {"crf": str(self.crf)}

    def close(self) -> int:
        """Finishes the file and commits it; returns the number of frames. StmError when none was added."""
        if self._container is None:
            raise StmError(f"{self.path}: no frames to write")
        try:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None
            commit(self._temporary, self.path)
        except BaseException:
            self.abort()
            raise
        return self.count

    def abort(self) -> None:
        """Drops the unfinished file; `path` keeps what it held before."""
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS, crf: int = 18,
    for_browsers: bool = False,
) -> int:
    """Frames (HxWx3 uint8 RGB) as an H.264 video through VideoWriter; returns the count."""
    with VideoWriter(path, fps, crf, for_browsers) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.count


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
