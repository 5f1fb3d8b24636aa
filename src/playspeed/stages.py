"""Cached experiment stages: the public API that ``playspeed demo``, ``playspeed compare`` and
``benchmarks/recipe.py`` build their chains from.

A stage is done when its output file exists (a training's or evaluation's ``metrics.json``,
the synthetic set's ``synth.json``, the store's ``prepare_report.json``); a chain that is run
again reuses every finished stage and resumes an interrupted training from its
``last.ckpt``. A run directory records the settings that made it (:func:`claim_run_dir`),
so a rerun with other settings is refused instead of silently reusing stale stages.

    synthetic set -> frame store -> pretrain -> fine-tune + test -> frozen retrieval + probes

Every reading a stage returns comes with the chance level its command stored beside it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from playspeed.config import Config, load_config, override_config
from playspeed.data.prepare import REPORT, prepare_dataset
from playspeed.data.synthetic import write_dataset
from playspeed.errors import PlayspeedError
from playspeed.io import write_json
from playspeed.model_card import write_model_card
from playspeed.tasks.base import backbone_from_config
from playspeed.tasks.evaluation import evaluate
from playspeed.tasks.features import FeatureCache
from playspeed.tasks.finetune import finetune
from playspeed.tasks.pretext import pretrain
from playspeed.tasks.probe import probe_metrics
from playspeed.tasks.registry import load_task
from playspeed.tasks.retrieval import retrieval_metrics
from playspeed.tasks.trainer import last_checkpoint

Log = Callable[[str], None]


@dataclass(frozen=True)
class Scale:
    """How big a chain is: the synthetic set and what each training runs."""

    classes: int | None  # None: every class of the synthetic set
    videos_per_class: int
    frames: int | tuple[int, int] | None  # length (range) of the videos; None: the variant's
    video_size: tuple[int, int] | None  # W, H of the written videos; None: the variant's
    pretrain: list[str] = field(default_factory=list)  # overrides of pretrain/synthetic_cpu
    finetune: list[str] = field(default_factory=list)  # overrides of finetune/synthetic_cpu
    pretrain_runs: tuple[str, ...] = ("bn", "tgn")
    workers: int = 2  # processes for decoding videos into the store
    # The store's frame format (prepare --format): raw for frames as small as the CPU configs'
    # 45x60 (8 kB a frame; decoding JPEG cost the loop ~6 ms a step), JPEG for larger ones.
    store_format: str = "jpeg"


def run_stage(name: str, done: Path, run: Callable[[], Any], log: Log) -> dict:
    """Run a stage unless its ``done`` file exists; return the stage's metrics (the ``done``
    file's JSON; ``{}`` for other files)."""
    if done.is_file():
        log(f"[cached] {name}")
    else:
        log(f"[run] {name}")
        start = time.perf_counter()
        run()
        log(f"[done] {name} in {time.perf_counter() - start:.0f}s")
    return json.loads(done.read_text()) if done.suffix == ".json" else {}


def train_stage(name: str, run_dir: Path, fn: Callable[[bool], Any], log: Log) -> dict:
    """A cached training stage (``fn(resume)``, done when ``run_dir/metrics.json`` exists) that
    resumes from ``last.ckpt`` when it was interrupted."""
    resume = last_checkpoint(run_dir).is_file()
    return run_stage(name, run_dir / "metrics.json", lambda: fn(resume), log)


def claim_run_dir(out: Path, settings: dict[str, Any], *, kind: str) -> None:
    """Record the run's settings in ``out/<kind>.json``; refuse a directory made by a run
    with other settings, whose cached stages would otherwise be reused silently."""
    manifest = out / f"{kind}.json"
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as read back
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        if found != settings:
            changed = ", ".join(sorted(k for k in settings if found.get(k) != settings[k]))
            raise PlayspeedError(f"{out}: holds a {kind} run with other settings ({changed} "
                                 "differ); use another --out or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, settings)


def synthetic_configs(data_root: Path, store: Path, scale: Scale, seed: int
                      ) -> tuple[Config, Config]:
    """The ``synthetic_cpu`` pretrain and fine-tune configs with ``scale``'s overrides,
    pointed at the synthetic set under ``data_root`` and its frame store."""
    data = [f"data.videos={data_root / 'UCF-101'}", f"data.splits={data_root / 'ucfTrainTestlist'}",
            f"data.store={store}", f"seed={seed}"]
    return (load_config("pretrain/synthetic_cpu", data + scale.pretrain),
            load_config("finetune/synthetic_cpu", data + scale.finetune))


def prepare_synthetic(out: Path, scale: Scale, seed: int, log: Log, *,
                      variant: str = "default", store_at_clip_size: bool = True
                      ) -> tuple[Config, Config]:
    """The synthetic dataset (``variant`` of the family) and its frame store under ``out``
    (cached stages); returns the pretrain and fine-tune configs that point at them.

    The store holds frames at the configs' ``clip.resize`` (the cheapest to read), or at
    ``prepare``'s default size as a user's would (``store_at_clip_size=False``).
    """
    data_root, store = out / "data", out / "store"
    run_stage(f"synthetic dataset ({variant}, seed {seed})", data_root / "synth.json",
              lambda: write_dataset(data_root, num_classes=scale.classes,
                                    videos_per_class=scale.videos_per_class, seed=seed,
                                    variant=variant, size=scale.video_size, frames=scale.frames,
                                    progress=True), log)
    pretrain_config, finetune_config = synthetic_configs(data_root, store, scale, seed)
    size = {"resize": tuple(pretrain_config.clip.resize)} if store_at_clip_size else {}
    run_stage("frame store", store / REPORT, lambda: prepare_dataset(
        "ucf101", videos=data_root / "UCF-101", splits=data_root / "ucfTrainTestlist",
        out=store, workers=scale.workers, fmt=scale.store_format, **size), log)
    return pretrain_config, finetune_config


def pretrain_stage(run_dir: Path, label: str, config: Config, log: Log) -> tuple[dict, Path]:
    """Pretrain into ``run_dir`` (cached); returns its metrics and its last checkpoint."""
    metrics = train_stage(f"pretrain ({label})", run_dir,
                          lambda resume: pretrain(config, run_dir, resume=resume), log)
    return metrics, last_checkpoint(run_dir)


def finetune_and_test(run_dir: Path, label: str, config: Config, *, init: Path | None,
                      log: Log) -> tuple[dict, dict]:
    """Fine-tune into ``run_dir`` (from ``init``'s backbone, or from scratch), then test its
    last checkpoint into ``run_dir/test`` (cached stages); returns both metrics."""
    tuned = train_stage(f"fine-tune ({label})", run_dir,
                        lambda resume: finetune(config, run_dir, init=init, resume=resume), log)
    tested = run_stage(f"test ({label})", run_dir / "test" / "metrics.json",
                       lambda: evaluate(last_checkpoint(run_dir), out=run_dir / "test"), log)
    return tuned, tested


def equal_compute_overrides(*, clips: int, batch_size: int, train_videos: int) -> list[str]:
    """Overrides that make a fine-tuning run on ``train_videos`` videos pass ``clips`` clips
    through its backbone: the steps (``trainer.max_steps``) and the epochs they span
    (``trainer.max_epochs``). A step takes ``batch_size`` clips, a last partial batch being
    dropped, or every video when there are fewer than a batch. The schedule (warm-up,
    cosine) stretches over the steps. For a scratch run with the compute of a pretraining and
    its fine-tuning together."""
    per_step = min(batch_size, train_videos)
    steps = math.ceil(clips / per_step)
    steps_per_epoch = max(1, train_videos // per_step)
    return [f"trainer.max_steps={steps}",
            f"trainer.max_epochs={math.ceil(steps / steps_per_epoch)}"]


def untrained_backbone(config: Config, seed: int) -> nn.Module:
    """The configured backbone at its random initialisation for ``seed`` (the frozen
    baseline: what a network reads before it learned anything)."""
    L.seed_everything(seed, verbose=False)
    return backbone_from_config(config)


def frozen_readings(out: Path, name: str, label: str, backbone: nn.Module, config: Config, *,
                    cache: FeatureCache, log: Log) -> tuple[dict, dict]:
    """Retrieval (``out/retrieval_<name>``) and k-NN / linear probe (``out/probe_<name>``) of
    a frozen ``backbone`` on ``config``'s split (cached stages; features shared through
    ``cache``); returns both metrics."""
    retrieval = run_stage(f"retrieval ({label})", out / f"retrieval_{name}" / "metrics.json",
                          lambda: retrieval_metrics(
                              backbone, config, out=out / f"retrieval_{name}", cache=cache,
                              num_clips=config.clip.test_clips, label=label), log)
    probe = run_stage(f"k-NN and linear probe ({label})", out / f"probe_{name}" / "metrics.json",
                      lambda: probe_metrics(backbone, config, out=out / f"probe_{name}",
                                            cache=cache, label=label), log)
    return retrieval, probe


#: A downstream row's readings: key -> (command, its metrics.json key, the key of its chance).
DOWNSTREAM_READINGS = {
    "video_top1": ("test", "video_top1", "chance_top1"),
    "clip_top1": ("test", "clip_top1", "chance_top1"),
    "retrieval_top1": ("retrieval", "top1", "chance_top1"),
    "retrieval_top5": ("retrieval", "top5", "chance_top5"),
    "knn_top1": ("probe", "knn_top1", "chance_top1"),
    "linear_top1": ("probe", "linear_top1", "chance_top1"),
}


#: The readings of a frozen backbone among them (retrieval and probes; no fine-tuning).
FROZEN_READINGS = ("retrieval_top1", "retrieval_top5", "knn_top1", "linear_top1")


def downstream_readings(results: dict[str, dict]) -> tuple[dict[str, float], dict[str, float]]:
    """The row's readings and their chance levels, from the ``metrics.json`` of ``test``,
    ``retrieval`` and ``probe`` (``results``: command -> metrics): every command stores the
    chance of each reading beside it (``chance_top<k>``)."""
    row = {key: results[command][metric]
           for key, (command, metric, _) in DOWNSTREAM_READINGS.items()}
    chance = {key: results[command][chance_key]
              for key, (command, _, chance_key) in DOWNSTREAM_READINGS.items()}
    return row, chance


def downstream_row(out: Path, name: str, label: str, *, init: Path | None, norm: str,
                   finetune_config: Config, seed: int, log: Log
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """Fine-tune (from ``init``, or from scratch) and test, then retrieval and k-NN / linear
    probe on the frozen backbone (random init for scratch), each a cached stage under
    ``out``; returns the row's readings and their chance levels
    (:func:`downstream_readings`). A pretrained model's card gains its downstream numbers."""
    config = override_config(finetune_config, [f"model.norm={norm}"])
    _, tested = finetune_and_test(out / f"finetune_{name}", label, config, init=init, log=log)
    pretrained = load_task(init) if init is not None else None
    backbone = pretrained.backbone if pretrained else untrained_backbone(config, seed)
    retrieval, probe = frozen_readings(out, name, label, backbone, finetune_config,
                                       cache=FeatureCache(out / "features"), log=log)
    if pretrained is not None:
        pretrain_dir = init.parent.parent
        write_model_card(pretrain_dir, pretrained.config,
                         json.loads((pretrain_dir / "metrics.json").read_text()),
                         backbone=backbone, downstream={"fine-tuned": tested,
                                                        "frozen": retrieval,
                                                        "frozen probe": probe})
    return downstream_readings({"test": tested, "retrieval": retrieval, "probe": probe})


def equal_compute_config(finetune_config: Config, *, pretext_clips: int, scratch: dict
                         ) -> Config:
    """``finetune_config`` for a scratch run with the compute of a pretraining of
    ``pretext_clips`` and its fine-tuning together (:func:`equal_compute_overrides`);
    ``scratch``: the ``metrics.json`` of the scratch fine-tuning of that config (its clips seen
    and training videos)."""
    return override_config(finetune_config, equal_compute_overrides(
        clips=pretext_clips + scratch["clips_seen"], batch_size=finetune_config.optim.batch_size,
        train_videos=scratch["train_videos"]))


def scratch_equal_compute(out: Path, finetune_config: Config, *, pretext_clips: int, log: Log
                          ) -> dict[str, float]:
    """Fine-tune from scratch for as many clip passes as a pretraining of ``pretext_clips``
    and the scratch run in ``out/finetune_scratch`` together (:func:`equal_compute_config`),
    into ``out/finetune_scratch_equal_compute``, and test it (cached stages); returns its
    video and clip top-1 with the clips it saw."""
    scratch = json.loads((out / "finetune_scratch" / "metrics.json").read_text())
    config = equal_compute_config(finetune_config, pretext_clips=pretext_clips, scratch=scratch)
    tuned, tested = finetune_and_test(out / "finetune_scratch_equal_compute",
                                      "scratch, equal compute", config, init=None, log=log)
    return {"video_top1": tested["video_top1"], "clip_top1": tested["clip_top1"],
            "clips_seen": tuned["clips_seen"]}
