"""YAML configs mapped onto dataclasses (OmegaConf structured configs), validated before a run starts.

Unknown keys, wrong types and bad values raise StmError naming the key and the file; command-line
overrides use the same dotted form as the YAML (`train.lr=1e-4`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stm.errors import StmError

T = TypeVar("T")


def choose(key: str, value: Any, allowed: tuple) -> None:
    """Value checks run in the dataclasses' __post_init__, i.e. when a config is built."""
    if value not in allowed:
        raise StmError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")


@dataclass
class ModelConfig:
    mode: str = "semi"  # semi | interactive
    backbone: str = "resnet50"  # resnet50 (the paper's) | resnet34 | resnet18
    read_kernel: str = "sdpa"  # sdpa | bmm
    decoder_channels: int = 256  # the paper's; a narrower decoder (e.g. 64) makes CPU demos ~3x cheaper per step
    imagenet_weights: str | None = None  # torchvision's resnet*.pth; None: random init (with a warning)
    init_weights: str | None = None  # a checkpoint to start from (stage 2 from stage 1, or the official weights)
    size: int | None = None  # short side inference runs at, recorded in checkpoints (None: min(data.size))

    def __post_init__(self) -> None:
        choose("model.mode", self.mode, ("semi", "interactive"))
        choose("model.backbone", self.backbone, ("resnet50", "resnet34", "resnet18"))
        choose("model.read_kernel", self.read_kernel, ("sdpa", "bmm"))
        if self.decoder_channels < 8:
            raise StmError(f"model.decoder_channels: {self.decoder_channels} must be >= 8")
        if self.size is not None and self.size < 16:
            raise StmError(f"model.size: {self.size} must be >= 16 (a short side in pixels)")


def _check_range(key: str, value: list[float], low: float | None = None) -> None:
    if len(value) != 2 or value[0] > value[1] or (low is not None and value[0] < low):
        raise StmError(f"{key}: {list(value)} must be [low, high] with {low or 0} <= low <= high")


@dataclass
class StaticSourceConfig:
    """Still images with instance masks, turned into clips (stage 1)."""

    root: str = MISSING
    kind: str = "folder"  # folder: image + mask files | yolo: COCO/YOLO polygon labels (images/, labels/)
    images: str = "images"  # sub-folder of root holding the images
    masks: str | None = None  # sub-folder of same-stem mask PNGs (default "masks") or YOLO .txt files ("labels")
    weight: float = 1.0  # sampling weight among all sources

    def check(self, key: str) -> None:
        choose(f"{key}.kind", self.kind, ("folder", "yolo"))
        if self.weight <= 0:
            raise StmError(f"{key}.weight: {self.weight} must be > 0")


@dataclass
class VideoSourceConfig:
    """Annotated videos (stage 2): a DAVIS 2017 or a YouTube-VOS layout folder."""

    root: str = MISSING
    kind: str = "davis"  # davis | youtube (its frame gaps are 5 raw frames, so its max skip is divided by 5)
    split: str = "train"  # davis: ImageSets/<year>/<split>.txt (else every sequence); youtube: <root>/<split>/
    year: int = 2017
    resolution: str = "480p"
    weight: float = 1.0

    def check(self, key: str) -> None:
        choose(f"{key}.kind", self.kind, ("davis", "youtube"))
        if self.weight <= 0:
            raise StmError(f"{key}.weight: {self.weight} must be > 0")


@dataclass
class SyntheticConfig:
    """Generated DAVIS-layout videos (stm.data.synthetic), written to `root` on first use."""

    root: str = "data/synthetic"
    train: int = 60
    val: int = 10
    height: int = 240
    width: int = 432
    min_frames: int = 24
    max_frames: int = 36
    max_objects: int = 3
    seed: int = 0


@dataclass
class AugmentConfig:
    """Random transforms of a clip. crop_scale: area fraction of the clip-wide crop; rotation, shear,
    scale, translate: the per-frame affine (degrees, degrees, factor range, fraction of the size);
    tps: probability of a thin-plate-spline warp per frame, tps_strength its control-point jitter."""

    crop_scale: list[float] = field(default_factory=lambda: [0.6, 1.0])
    rotation: float = 0.0
    shear: float = 0.0
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    translate: float = 0.0
    tps: float = 0.0
    tps_strength: float = 0.05
    flip: float = 0.5
    colour: float = 0.1  # brightness / contrast / saturation jitter per frame; hue moves by a fifth of it

    def check(self, key: str) -> None:
        _check_range(f"{key}.crop_scale", self.crop_scale, 0.0)
        _check_range(f"{key}.scale", self.scale, 0.0)


@dataclass
class SkipCurriculumConfig:
    """Largest number of frames skipped between two clip frames, grown linearly from `start` to `end`
    over `ramp_steps` steps (STM grows it to 25)."""

    start: int = 5
    end: int = 25
    ramp_steps: int = 0  # 0: `end` from the first step


@dataclass
class DataConfig:
    static: list[StaticSourceConfig] = field(default_factory=list)
    video: list[VideoSourceConfig] = field(default_factory=list)
    synthetic: SyntheticConfig | None = None  # generate this dataset first (the demo)
    size: list[int] = field(default_factory=lambda: [384, 384])  # training crop [height, width]
    frames: int = 3
    max_objects: int = 3
    workers: int = 2
    skip: SkipCurriculumConfig = field(default_factory=SkipCurriculumConfig)
    static_augment: AugmentConfig = field(
        default_factory=lambda: AugmentConfig(
            crop_scale=[0.36, 1.0], rotation=20.0, shear=10.0, scale=[0.9, 1.1], translate=0.1, tps=0.3
        )
    )
    video_augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotation=5.0, shear=5.0))

    def check(self, key: str) -> None:
        if len(self.size) != 2 or min(self.size) < 16:
            raise StmError(f"data.size: {list(self.size)} must be [height, width], each >= 16")
        if self.frames < 2:
            raise StmError(f"data.frames: {self.frames} must be >= 2 (one memorised, one predicted)")
        if self.max_objects < 1:
            raise StmError(f"data.max_objects: {self.max_objects} must be >= 1")


@dataclass
class LossConfig:
    """ce: cross-entropy; bootstrap: CE over the hardest `top_p` of the pixels, plain CE until
    `start_step`, the fraction annealed linearly from 1 to `top_p` by `end_step` (STCN: 20K, 70K, 0.15)."""

    kind: str = "ce"
    top_p: float = 0.15
    start_step: int = 20000
    end_step: int = 70000

    def check(self, key: str) -> None:
        choose("train.loss.kind", self.kind, ("ce", "bootstrap"))
        if not 0 < self.top_p <= 1:
            raise StmError(f"train.loss.top_p: {self.top_p} must be in (0, 1]")


@dataclass
class TrainConfig:
    step: str = "semi"  # the clip step (stm.train.steps.CLIP_STEPS): semi | interactive
    steps: int = 150000  # stop after this many optimizer steps
    max_minutes: float = 0.0  # and after this much wall-clock training time (0: no limit)
    batch_size: int = 4  # clips per process
    lr: float = 1e-5
    lr_factors: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> multiple of lr, e.g.
    # {memory_encoder.trunk.extra_stem: 10}: new, zero-initialised inputs catch up with copied ones (Adam moves
    # a weight by about lr per step, so from zero they stay far smaller for hundreds of steps)
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | step | poly | cosine
    lr_milestones: list[int] = field(default_factory=list)  # step schedule: multiply by lr_gamma at each
    lr_gamma: float = 0.1
    warmup_steps: int = 0  # linear warm-up from 0
    loss: LossConfig = field(default_factory=LossConfig)
    grad_clip: float = 0.0  # max gradient norm (0: off)
    channels_last: bool = True  # NHWC weights: about 10% faster steps on the CPU (fp32), what tensor cores want
    amp: str = "auto"  # auto (fp16 + gradient scaler on CUDA, fp32 on the CPU) | fp32 | bf16 | fp16 (CUDA only)
    device: str = "auto"  # auto | cpu | cuda
    freeze_bn: bool | None = None  # None: frozen when starting from pretrained weights, trainable from random init
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    seed: int = 0
    max_nan_steps: int = 5  # abort after this many consecutive non-finite losses
    max_bad_samples: int = 50  # abort after this many unreadable training samples
    find_unused_parameters: bool = False  # DDP option, for steps that leave parts of the model unused

    def check(self, key: str) -> None:
        choose("train.lr_schedule", self.lr_schedule, ("constant", "step", "poly", "cosine"))
        choose("train.amp", self.amp, ("auto", "fp32", "bf16", "fp16"))
        choose("train.device", self.device, ("auto", "cpu", "cuda"))
        for key in ("steps", "batch_size"):
            if getattr(self, key) < 1:
                raise StmError(f"train.{key}: {getattr(self, key)} must be >= 1")
        if self.lr <= 0:
            raise StmError(f"train.lr: {self.lr} must be > 0")
        for prefix, factor in self.lr_factors.items():
            if factor <= 0:
                raise StmError(f"train.lr_factors.{prefix}: {factor} must be > 0")


@dataclass
class ValConfig:
    """Validation J&F on held-out videos (a DAVIS-layout folder), periodically and at the end."""

    root: str | None = None  # DAVIS-layout folder of held-out videos (None: no validation)
    split: str = "val"
    year: int = 2017
    max_videos: int = 0  # 0: all
    size: list[int] | None = None  # resize frames to [height, width] (None: as stored)
    mem_every: int = 5
    every_steps: int = 0  # 0: only at the end
    every_minutes: float = 0.0  # also every this many minutes of training (0: off)
    final: bool = True  # validate when training stops
    bn_batches: int = 10  # trainable BatchNorm: re-estimate its running statistics over this many training
    # batches before each validation (0: off); from random init the momentum averages lag far behind

    def check(self, key: str) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 16):
            raise StmError(f"val.size: {list(self.size)} must be [height, width], each >= 16")


@dataclass
class InteractiveConfig:
    """The simulated interaction protocol: the interactive training step and its validation."""

    rounds: int = 8  # interactions the validation plays per held-out video, as the DAVIS robot plays them
    train_rounds: int = 3  # rounds per training clip (at most its length: longer clips keep frames that are
    # never scribbled, so corrections must carry beyond the memory; README "Interactive evaluation")
    scribble_thickness: int = 3  # stroke width in pixels at the training size (1-pixel strokes were too
    # faint at 64x112 for later rounds to beat round 1; README "Interactive evaluation")

    def check(self, key: str) -> None:
        for name in ("rounds", "train_rounds", "scribble_thickness"):
            if getattr(self, name) < 1:
                raise StmError(f"interactive.{name}: {getattr(self, name)} must be >= 1")


@dataclass
class RunConfig:
    dir: str | None = None  # None: checkpoints/<config file stem>
    save_every_steps: int = 1000
    save_every_minutes: float = 5.0
    keep_last: int = 3  # step_<N>.pth files kept beside latest.pth
    log_every_steps: int = 10
    image_every_steps: int = 500  # tensorboard overlays (0: off)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    val: ValConfig = field(default_factory=ValConfig)
    interactive: InteractiveConfig = field(default_factory=InteractiveConfig)
    run: RunConfig = field(default_factory=RunConfig)


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None, schema: type[T] = Config) -> T:
    """Reads YAML `path` (may be None) over the schema's defaults, then applies `key.sub=value` overrides."""
    if path is not None and not Path(path).is_file():
        raise StmError(f"{path}: no such config file")
    bad = [item for item in overrides or [] if "=" not in item]
    if bad:
        raise StmError(f"override {bad[0]!r} is not of the form key.sub=value")
    where = path or "config"
    try:
        config = OmegaConf.structured(schema)
        layers = []
        if path is not None:
            layers.append((path, OmegaConf.load(path)))
        if overrides:
            layers.append(("override", OmegaConf.from_dotlist(overrides)))
        for source, layer in layers:
            where = source
            _check_keys(OmegaConf.to_container(layer), schema, "")
            config = OmegaConf.merge(config, layer)
        where = path or "config"
        result = OmegaConf.to_object(config)
        _validate(result, "")
        return result
    except OmegaConfBaseException as exc:
        raise StmError(f"{where}: {_describe(exc)}") from None
    except StmError as exc:
        raise StmError(f"{where}: {exc}") from None


def _check_keys(raw: Any, schema: Any, prefix: str) -> None:
    """Names unknown keys with their full path, list items included (OmegaConf loses the path there)."""
    if not (dataclasses.is_dataclass(schema) and isinstance(raw, dict)):
        return
    hints = typing.get_type_hints(schema)
    for key, value in raw.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            raise StmError(f"unknown key '{prefix}{key}'" + (f" (did you mean '{prefix}{close[0]}'?)" if close else ""))
        for kind in _dataclasses_in(hints[key]):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    _check_keys(item, kind, f"{prefix}{key}[{index}].")
            else:
                _check_keys(value, kind, f"{prefix}{key}.")


def _dataclasses_in(hint: Any) -> list[type]:
    if dataclasses.is_dataclass(hint):
        return [hint]
    return [kind for arg in typing.get_args(hint) for kind in _dataclasses_in(arg)]


def _validate(node: Any, prefix: str) -> None:
    """Runs each section's check(key) with its full key, depth first."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _validate(item, f"{prefix}[{index}]")
        return
    if not dataclasses.is_dataclass(node):
        return
    if hasattr(node, "check"):
        node.check(prefix)
    for item in dataclasses.fields(node):
        _validate(getattr(node, item.name), f"{prefix}.{item.name}" if prefix else item.name)


def _describe(exc: OmegaConfBaseException) -> str:
    """OmegaConf's message, first line only, with the full key it concerns."""
    message = str(exc).splitlines()[0]
    key = getattr(exc, "full_key", None)
    if "not in struct" in message or "Key '" in message and "not" in message:
        return f"unknown key '{key}'" if key else message
    return f"{key}: {message}" if key and key not in message else message


def to_dict(config: Any) -> dict:
    """Plain nested dict of a config dataclass (for checkpoints and logs)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
