"""Reading and writing frames and masks, and the DAVIS folder layout, with errors that name the file.

Masks are arrays of object ids (uint8, 0 = background). On disk they are palette PNGs with the DAVIS
palette (the PASCAL VOC colour map); DAVIS 2016 style 0/255 greyscale masks read as one object.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from stm.errors import StmError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def davis_palette() -> bytes:
    """The 256-colour PASCAL VOC palette that DAVIS annotations use (id 1 = (128, 0, 0), ...)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value = index
        for bit in range(8):
            for channel in range(3):
                colours[index, channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
    return colours.tobytes()


DAVIS_PALETTE = davis_palette()


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """RGB frame as uint8 [H, W, 3]; StmError naming the file when it is missing, unreadable or truncated."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise StmError(f"{path}: unreadable image ({exc})") from None


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Object ids as uint8 [H, W]. Palette PNGs keep their indices; greyscale 0/255 masks (DAVIS 2016)
    become ids 0/1. Other greyscale values or colour masks are refused."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            ids = np.array(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise StmError(f"{path}: unreadable mask ({exc})") from None
    if mode == "P":
        return ids.astype(np.uint8)
    if mode == "LA":  # greyscale with an alpha channel (some DAVIS 2016 files): the grey values count
        ids, mode = ids[..., 0], "L"
    if mode in ("L", "1"):
        values = np.unique(ids)
        if mode == "1" or set(values.tolist()) <= {0, 255}:
            return (ids > 0).astype(np.uint8)
        if values.max() < 255:  # a greyscale image of small ids
            return ids.astype(np.uint8)
    raise StmError(f"{path}: mask must be a palette PNG of object ids or a 0/255 greyscale PNG (mode {mode})")


VOID = 255  # DAVIS "void" pixels: never an object, never a target, scored as background


def without_void(mask: np.ndarray) -> np.ndarray:
    """Object ids with void pixels (255) turned into background (0), as the official evaluation scores them."""
    mask = np.asarray(mask)
    return np.where(mask == VOID, 0, mask).astype(mask.dtype, copy=False)


PARTIAL_GLOB = ".*.partial*"  # temporary files of atomic writes (a killed process may leave some)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """The one way files are written: write(temporary) fills a temporary file beside `path` (same
    suffix, so writers that choose the format by it still can), then `commit` flushes it to disk and
    renames it onto `path`. Readers never see half a file, and after a crash or a power loss `path`
    holds the old contents or the new ones, never an empty or partial file."""
    path = Path(path)
    temporary = partial_path(path)
    try:
        write(str(temporary))
        commit(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def partial_path(path: Path) -> Path:
    """A new empty temporary file beside `path` for an atomic write (`.name.XXXX.partial.suffix`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{path.suffix}")
    os.close(handle)
    return Path(temporary)


def commit(temporary: Path, path: Path) -> None:
    """fsync `temporary`, then rename it onto `path` (atomic on POSIX and Windows)."""
    handle = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
    os.replace(temporary, path)


def write_mask(path: str | os.PathLike, ids: np.ndarray, palette: bytes = DAVIS_PALETTE) -> None:
    """Writes object ids [H, W] as a palette PNG, atomically."""
    image = Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="P")
    image.putpalette(palette)
    atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))


def write_frame(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Writes an RGB uint8 frame (JPEG or PNG by suffix), atomically. JPEG quality 100 also keeps
    the colour at full resolution (4:4:4): near-lossless, for data made here (stm.data.synthetic)."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        options = {"format": "JPEG", "quality": quality, **({"subsampling": 0} if quality >= 100 else {})}
    else:
        options = {"format": "PNG"}
    atomic_write(Path(path), lambda tmp: image.save(tmp, **options))


@dataclass
class VideoSequence:
    """One video on disk: its frames in order and the masks that exist for some of them."""

    name: str
    frames: list[Path]
    masks: dict[int, Path] = field(default_factory=dict)  # frame index -> mask file

    def __len__(self) -> int:
        return len(self.frames)


def _sorted_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))


def davis_sequence(root: str | os.PathLike, name: str, resolution: str = "480p") -> VideoSequence:
    """A sequence of a DAVIS-layout folder: JPEGImages/<res>/<name>/*.jpg, Annotations/<res>/<name>/*.png."""
    root = Path(root)
    frame_dir = root / "JPEGImages" / resolution / name
    if not frame_dir.is_dir():
        raise StmError(f"{frame_dir}: no such sequence folder")
    frames = _sorted_files(frame_dir, FRAME_SUFFIXES)
    if not frames:
        raise StmError(f"{frame_dir}: no frames (.jpg/.png) in the sequence folder")
    mask_dir = root / "Annotations" / resolution / name
    stems = {frame.stem: index for index, frame in enumerate(frames)}
    masks = {}
    if mask_dir.is_dir():
        masks = {stems[p.stem]: p for p in _sorted_files(mask_dir, (".png",)) if p.stem in stems}
    return VideoSequence(name, frames, masks)


def davis_sequence_names(
    root: str | os.PathLike,
    year: int | str = 2017,
    split: str = "val",
    names: list[str] | None = None,
    resolution: str = "480p",
) -> list[str]:
    """The sequences to use: `names` if given, else ImageSets/<year>/<split>.txt if present (DAVIS 2017:
    one name a line), else ImageSets/<res>/<split>.txt (the DAVIS 2016 release: frame paths a line),
    else every folder under JPEGImages/<res>."""
    root = Path(root)
    frames_root = root / "JPEGImages" / resolution
    if not frames_root.is_dir():
        raise StmError(f"{root}: not a DAVIS-layout folder (no JPEGImages/{resolution})")
    by_year = root / "ImageSets" / str(year) / f"{split}.txt"
    by_resolution = root / "ImageSets" / resolution / f"{split}.txt"
    if names:
        chosen = list(names)
    elif by_year.is_file():
        chosen = [line.strip() for line in by_year.read_text().splitlines() if line.strip()]
    elif by_resolution.is_file():
        chosen = list(
            dict.fromkeys(
                _davis2016_name(line, by_resolution) for line in by_resolution.read_text().splitlines() if line.strip()
            )
        )
    else:
        chosen = sorted(p.name for p in frames_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not chosen:
        raise StmError(f"{frames_root}: no sequences found")
    absent = [name for name in chosen if not (frames_root / name).is_dir()]
    if absent:
        raise StmError(f"{frames_root / absent[0]}: sequence listed but its folder does not exist")
    return chosen


def _davis2016_name(line: str, listing: Path) -> str:
    """The sequence of a DAVIS 2016 listing line "/JPEGImages/480p/<seq>/00000.jpg /Annotations/...png"."""
    parts = Path(line.split()[0]).parts
    if len(parts) < 3:
        raise StmError(f"{listing}: cannot read a sequence name from the line {line.strip()!r}")
    return parts[-2]


def check_mask_size(mask_path: Path, mask: np.ndarray, frame_path: Path, frame: np.ndarray) -> None:
    """StmError naming the mask when its size differs from its frame's."""
    if mask.shape[:2] != frame.shape[:2]:
        (mh, mw), (fh, fw) = mask.shape[:2], frame.shape[:2]
        raise StmError(f"{mask_path}: mask is {mw}x{mh} but its frame {Path(frame_path).name} is {fw}x{fh}")
