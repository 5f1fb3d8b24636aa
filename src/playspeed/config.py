"""Typed run configuration: dataclasses, loaded from YAML with dotted ``key=value`` overrides.

Every default of the method (docs/method.md) is a named field here. Loading validates types
(OmegaConf's structured configs), rejects unknown keys by name and checks value ranges, so a
typo fails before any data is touched. Library code never reads config files: the CLI turns a
:class:`Config` into keyword arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from playspeed.errors import PlayspeedError, first_line
from playspeed.io import atomic_write_text
from playspeed.objectives import OBJECTIVES

BACKBONES = ("c3d", "r3d_10", "r3d_18", "r2plus1d_10", "r2plus1d_18")
NORMS = ("bn", "tgn", "gn")
INPUT_MODES = ("rgb", "frame_diff", "frame_diff_unit")
# The names of data.dataset and of ``playspeed prepare --dataset`` (playspeed.data.datasets
# reads each).
DATASETS = ("ucf101", "hmdb51", "kinetics", "ssv2", "folder")
MEMORY_FORMATS = ("contiguous", "channels_last_3d")
# Kinetics statistics, the usual normalisation of the field's 3D CNNs.
KINETICS_MEAN = (0.432, 0.398, 0.377)
KINETICS_STD = (0.228, 0.224, 0.225)


@dataclass
class DataConfig:
    dataset: str = "ucf101"
    videos: str | None = None  # folder of class folders (kinetics: of train/ and val/)
    splits: str | None = None  # folder with the official split or annotation files
    split: int = 1  # 1-3, docs/method.md#evaluation-protocols (kinetics, ssv2: one split, 1)
    store: str | None = None  # prepared frame store; null reads the videos directly
    workers: int = 4  # DataLoader processes per device
    # A split line naming a missing video: warning, not error (kinetics, ssv2: always).
    skip_missing: bool = False
    val_fraction: float = 0.1  # share of training videos held out for validation
    hflip: bool = True  # fine-tuning flip; off where classes are mirror images


@dataclass
class ClipConfig:
    len: int = 16  # frames per clip
    size: int = 112  # crop side
    resize: list[int] = field(default_factory=lambda: [128, 171])  # H, W before cropping
    stride: int = 1  # frame skip of fine-tuning and test clips
    crop_scale: list[float] = field(default_factory=lambda: [0.7, 1.0])  # of the short side
    color_jitter: float = 0.0  # strength of brightness/contrast/saturation jitter
    # Training crops pan and zoom along a straight path over each clip, the centre by up to
    # this fraction of the crop side (data.transforms.ClipTransform); 0 holds them still.
    camera_motion: float = 0.0
    mean: list[float] = field(default_factory=lambda: list(KINETICS_MEAN))
    std: list[float] = field(default_factory=lambda: list(KINETICS_STD))
    # evenly spaced clips per video for video accuracy (docs/method.md#evaluation-protocols)
    test_clips: int = 10

    @property
    def shape(self) -> str:
        """``T x H x W`` of a network input clip, e.g. ``16x112x112``."""
        return f"{self.len}x{self.size}x{self.size}"


@dataclass
class ModelConfig:
    backbone: str = "r3d_18"
    norm: str = "tgn"
    # TGN's g: P_l = max(1, T_l // g) (docs/method.md#temporal-group-normalization)
    frames_per_group: int = 4
    groups_per_stage: list[int] | None = None  # explicit TGN group counts instead of the rule
    width: float = 1.0  # channel multiplier (small CPU runs)
    # rgb | frame_diff | frame_diff_unit: the first stage sees the differences of consecutive
    # frames, or those at unit RMS per clip (the backbone still takes RGB clips); not part of
    # the published method, which trains on RGB (docs/method.md#input-modes).
    input_mode: str = "rgb"
    dropout: float = 0.5  # before the fine-tuning classifier


@dataclass
class PretextConfig:
    # classify | speed | direction | sort | vcop | rotation | speed_contrast
    # (playspeed/objectives.py)
    objective: str = "classify"
    speeds: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    directions: list[int] = field(default_factory=lambda: [1, -1])
    num_clips: int = 3  # clips per sample (vcop: the tuple length, 3 in VCOP)
    # classify, speed_contrast: one softmax over signed speeds instead of two heads
    joint: bool = False
    clip_gap: int = 8  # vcop: frames between consecutive clips of a tuple (VCOP's interval)
    # Validation grid (same clips every epoch): starts per speed x direction per video for
    # per-clip objectives; seeded samples per video for clip-order objectives (sort, vcop).
    # One start is 8 clips per held-out video, ~10% of a training epoch's time at
    # data.val_fraction 0.1 (benchmarks/train_loop.py: 2 starts took 20%).
    val_starts: int = 1
    val_samples: int = 4
    # speed_contrast (playspeed/tasks/contrast.py): the instance-discrimination loss is added
    # with this weight (RSPNet's A = 1; PCL 0.5) ...
    contrast_weight: float = 1.0
    # ... at this softmax temperature (MoCo v1, RSPNet and PCL: 0.07) ...
    contrast_temperature: float = 0.07
    # ... against this many momentum keys of earlier steps besides the batch's (MoCo 65536 on
    # ImageNet, RSPNet 16384 on Kinetics; PCL draws 1024 negatives on UCF-101, the nearest to
    # our sets of a few hundred videos; 0: the batch's negatives only) ...
    contrast_queue: int = 1024
    # ... from a key encoder that follows the trained one at this momentum (MoCo's ablation:
    # 0.99 as good as its default 0.999, which in runs of a few thousand steps would leave the
    # key encoder mostly at its random start) ...
    contrast_momentum: float = 0.99
    # ... through a projection head of its own: features -> hidden -> this size, L2-normalised
    # (MoCo, RSPNet, PCL: 128); hidden null: the backbone's feature size (MoCo v2's and PCL's
    # MLP), 0: a linear projection (RSPNet's default).
    contrast_dim: int = 128
    contrast_hidden: int | None = None
    # A clip of the same video played the other way: "positive" (RSPNet's A-VID: every clip
    # of the video, whatever its speed or direction) or "negative" (only clips played the same
    # way are positives; the reversed ones are negatives that share everything with the query
    # but the direction of its motion, and reversal changes the action: sit down, stand up).
    contrast_reversed: str = "positive"
    # Each clip with its motion shuffled (its frame-to-frame changes in a random order; IIC's
    # intra-video negative) is a negative for the other clips of the batch: the look and the
    # changes of the video without their order.
    contrast_shuffled: bool = False


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.01  # for the global batch of `batch_size` x devices x nodes
    momentum: float = 0.9
    weight_decay: float = 0.0005
    batch_size: int = 8  # per device
    schedule: str = "cosine"  # cosine | step | constant
    warmup_epochs: float = 0.0
    step_epochs: list[int] = field(default_factory=list)  # step schedule: decay epochs
    step_gamma: float = 0.1
    backbone_lr_scale: float = 1.0  # fine-tuning: backbone lr = lr x this (head: lr)


@dataclass
class FinetuneConfig:
    init: str | None = None  # pretrain checkpoint; null trains from scratch
    norm_stats: str = "update"  # update | frozen: keep the pretrained BN/TGN statistics
    # Training clips get a still frame of another clip of the batch blended in, with weight
    # drawn from [0, this) (data.transforms.mix_still_frames); 0 is off.
    still_mix: float = 0.0
    # The first this-many backbone stages (stem or conv1 first) keep their pretrained
    # weights; their norm statistics still follow norm_stats. 0 trains every stage, and so
    # does a run from scratch (frozen random weights would only weaken the baseline).
    freeze_stages: int = 0
    # Share of each class's training videos (after the validation hold-out) that fine-tuning
    # learns from, whole scenes where the names give them: label-efficiency studies. 1 is all.
    label_fraction: float = 1.0


@dataclass
class TrainerConfig:
    max_epochs: int = 100
    max_steps: int = -1
    # Wall-clock budget "DD:HH:MM:SS" (Lightning's Timer): training ends there, mid-epoch,
    # with a checkpoint of its last step; null: none.
    max_time: str | None = None
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto (the fast one on this machine) | bf16-mixed | 16-mixed | 32-true
    gradient_clip_val: float | None = None  # clip the gradient norm (null: no clipping)
    sync_norm: bool = False  # multi-process: BN and TGN statistics over the global batch
    memory_format: str = "contiguous"  # contiguous | channels_last_3d
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    progress_bar: bool = True


@dataclass
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretext: PretextConfig = field(default_factory=PretextConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def builtin_config_dir() -> Path:
    """The configs shipped with the package (``configs/`` in the repository)."""
    return Path(str(resources.files("playspeed") / "configs"))


def resolve_config_path(name: str | Path) -> Path:
    """A YAML path, or a built-in name such as ``pretrain/synthetic_cpu``."""
    path = Path(name)
    if path.is_file():
        return path
    builtin = builtin_config_dir() / Path(name).with_suffix(".yaml")
    if builtin.is_file():
        return builtin
    available = sorted(
        str(p.relative_to(builtin_config_dir()).with_suffix(""))
        for p in builtin_config_dir().glob("*/*.yaml")
    )
    raise PlayspeedError(
        f"{name}: no such config file (built-in configs: {', '.join(available)})"
    )


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults <- YAML file <- dotted ``key=value`` overrides, validated."""
    source = "config"
    try:
        merged = OmegaConf.structured(Config)
        if path is not None:
            config_path = resolve_config_path(path)
            source = str(config_path)
            try:
                loaded = OmegaConf.load(config_path)
            except Exception as err:  # the YAML parser's errors carry line numbers
                raise PlayspeedError(f"{config_path}: not valid YAML ({first_line(err)})") from err
            merged = OmegaConf.merge(merged, loaded or {})
        config: Config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise PlayspeedError(f"{source}: {_describe_omegaconf_error(err)}") from err
    return override_config(config, list(overrides), source=source)


def override_config(config: Config, overrides: list[str], *, source: str = "config") -> Config:
    """``config`` with dotted ``key=value`` overrides applied, validated."""
    for item in overrides:
        if "=" not in item:
            raise PlayspeedError(f"override '{item}': expected key=value")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config),
                                 OmegaConf.from_dotlist(list(overrides)))
        updated: Config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise PlayspeedError(f"command line: {_describe_omegaconf_error(err)}") from err
    validate(updated, source=source)
    return updated


def config_to_dict(config: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a config stored in a checkpoint (keys unknown to this version are an error)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), values))
    except OmegaConfBaseException as err:
        raise PlayspeedError(f"stored config: {_describe_omegaconf_error(err)}") from err


def save_config(config: Config, path: Path) -> None:
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.structured(config)))


def validate(config: Config, *, source: str = "config") -> None:
    """Range and choice checks that types alone cannot express."""

    def check(ok: bool, key: str, problem: str) -> None:
        if not ok:
            raise PlayspeedError(f"{source}: {key} {problem}")

    def one_of(value: Any, choices: tuple, key: str) -> None:
        check(value in choices, key, f"is {value!r}; expected one of {', '.join(choices)}")

    one_of(config.data.dataset, DATASETS, "data.dataset")
    check(config.data.split in (1, 2, 3), "data.split", "must be 1, 2 or 3")
    check(config.data.workers >= 0, "data.workers", "must be >= 0")
    check(0.0 <= config.data.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)")
    check(config.clip.len >= 2, "clip.len", "must be >= 2")
    check(config.clip.size >= 8, "clip.size", "must be >= 8")
    check(len(config.clip.resize) == 2 and min(config.clip.resize) >= config.clip.size,
          "clip.resize", f"must be [H, W], each >= clip.size ({config.clip.size})")
    check(config.clip.stride >= 1, "clip.stride", "must be >= 1")
    check(len(config.clip.crop_scale) == 2 and 0 < config.clip.crop_scale[0]
          <= config.clip.crop_scale[1] <= 1, "clip.crop_scale", "must be [low, high] in (0, 1]")
    check(0 <= config.clip.camera_motion < 1, "clip.camera_motion", "must be in [0, 1)")
    check(len(config.clip.mean) == 3 and len(config.clip.std) == 3 and min(config.clip.std) > 0,
          "clip.mean/clip.std", "must hold 3 values each, std > 0")
    check(config.clip.test_clips >= 1, "clip.test_clips", "must be >= 1")
    one_of(config.model.backbone, BACKBONES, "model.backbone")
    one_of(config.model.norm, NORMS, "model.norm")
    one_of(config.model.input_mode, INPUT_MODES, "model.input_mode")
    check(config.model.frames_per_group >= 1, "model.frames_per_group", "must be >= 1")
    check(config.model.width > 0, "model.width", "must be > 0")
    one_of(config.pretext.objective, tuple(OBJECTIVES), "pretext.objective")
    objective = OBJECTIVES[config.pretext.objective]
    speeds, directions = config.pretext.speeds, config.pretext.directions
    check(len(speeds) >= 1 and min(speeds) >= 1 and len(set(speeds)) == len(speeds),
          "pretext.speeds", "must be distinct frame skips >= 1")
    check(len(directions) >= 1 and set(directions) <= {1, -1}
          and len(set(directions)) == len(directions),
          "pretext.directions", "must be a subset of [1, -1]")
    most = objective.max_clips(speeds=speeds, directions=directions) or config.pretext.num_clips
    check(1 <= config.pretext.num_clips <= most, "pretext.num_clips",
          f"must be between 1 and the number of signed speeds {objective.name} draws ({most})")
    check(objective.per_clip or 2 <= config.pretext.num_clips <= 5, "pretext.num_clips",
          f"must be 2-5 for the {objective.name} objective (num_clips! classes)")
    check(all(n >= 2 for n in objective.num_classes(
        speeds=speeds, directions=directions, num_clips=config.pretext.num_clips).values()),
        "pretext", f"leaves the {objective.name} objective a single class to predict "
        "(e.g. direction needs directions [1, -1])")
    check(config.pretext.clip_gap >= 0, "pretext.clip_gap", "must be >= 0")
    check(config.pretext.val_starts >= 1 and config.pretext.val_samples >= 1,
          "pretext.val_starts/val_samples", "must be >= 1")
    check(not objective.contrast or config.pretext.num_clips >= 2, "pretext.num_clips",
          f"must be >= 2 for the {objective.name} objective (a clip's positives are the other "
          "clips of its video)")
    check(config.pretext.contrast_weight >= 0, "pretext.contrast_weight", "must be >= 0")
    check(config.pretext.contrast_temperature > 0, "pretext.contrast_temperature", "must be > 0")
    check(config.pretext.contrast_queue >= 0, "pretext.contrast_queue", "must be >= 0")
    check(0 <= config.pretext.contrast_momentum < 1, "pretext.contrast_momentum",
          "must be in [0, 1)")
    check(config.pretext.contrast_dim >= 1, "pretext.contrast_dim", "must be >= 1")
    check(config.pretext.contrast_hidden is None or config.pretext.contrast_hidden >= 0,
          "pretext.contrast_hidden", "must be >= 0 or null")
    one_of(config.pretext.contrast_reversed, ("positive", "negative"), "pretext.contrast_reversed")
    check(not config.pretext.contrast_shuffled or config.clip.len >= 3, "pretext.contrast_shuffled",
          "needs clip.len >= 3 (two frame changes to reorder)")
    one_of(config.optim.name, ("sgd", "adamw"), "optim.name")
    one_of(config.optim.schedule, ("cosine", "step", "constant"), "optim.schedule")
    check(config.optim.lr > 0, "optim.lr", "must be > 0")
    check(config.optim.batch_size >= 1, "optim.batch_size", "must be >= 1")
    check(config.optim.backbone_lr_scale >= 0, "optim.backbone_lr_scale", "must be >= 0")
    one_of(config.finetune.norm_stats, ("update", "frozen"), "finetune.norm_stats")
    check(0 <= config.finetune.still_mix < 1, "finetune.still_mix", "must be in [0, 1)")
    check(config.finetune.freeze_stages >= 0, "finetune.freeze_stages", "must be >= 0")
    check(0 < config.finetune.label_fraction <= 1, "finetune.label_fraction", "must be in (0, 1]")
    one_of(config.trainer.memory_format, MEMORY_FORMATS, "trainer.memory_format")
    check(config.trainer.max_epochs >= 1, "trainer.max_epochs", "must be >= 1")
    check(config.trainer.max_time is None
          or re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", str(config.trainer.max_time)),
          "trainer.max_time", f"is {config.trainer.max_time!r}; expected DD:HH:MM:SS")


def _describe_omegaconf_error(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    message = first_line(err)
    if type(err).__name__ == "ConfigKeyError" and key:
        return f"unknown config key '{key}'"
    return f"{key}: {message}" if key else message

