"""``playspeed demo``: the whole method end to end on the embedded synthetic dataset.

Stages, each cached in the run directory so an interrupted demo resumes where it stopped
(a stage is done when its ``metrics.json`` exists; an interrupted training run resumes from
its ``last.ckpt``):

    synth -> prepare -> pretrain (BN, TGN; + TGN sort in full mode)
          -> fine-tune (scratch and each pretrained backbone, same budget) -> test
          -> retrieval and k-NN / linear probe (frozen backbones; scratch = random init)
          -> results table, report.md, plots

``--quick`` is sized for 2 CPU cores (under 10 minutes); full mode is the field's setting
(16x112x112, R3D-18) for a GPU.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from playspeed.config import Config, load_config, override_config
from playspeed.errors import PlayspeedError
from playspeed.io import write_json
from playspeed.rundir import locks_run_dir


@dataclass(frozen=True)
class DemoScale:
    """How big the demo is: the dataset and what each stage runs."""

    classes: int | None  # None: every class of the synthetic set
    videos_per_class: int
    frames: int | tuple[int, int] | None  # length (range) of the videos; None: the variant's
    video_size: tuple[int, int] | None  # W, H of the written videos; None: the variant's
    pretrain: list[str] = field(default_factory=list)  # overrides of pretrain/synthetic_cpu
    finetune: list[str] = field(default_factory=list)  # overrides of finetune/synthetic_cpu
    pretrain_runs: tuple[str, ...] = ("bn", "tgn")
    workers: int = 2  # processes for decoding videos into the store


# Quick: the synthetic_cpu configs (16-frame pretraining, 8-frame fine-tuning at stride 2)
# with 36 of their 120 pretraining epochs, validated every 4th, one pretraining (TGN) and two
# fine-tunings, so that it fits 10 minutes on 2 CPU cores without native bf16 even when the
# machine is shared (45 epochs took 10:56 on a busy development machine, 36 took 8:42-9:13);
# BN against TGN is in the full mode and in `playspeed compare`.
QUICK = DemoScale(classes=None, videos_per_class=20, frames=128, video_size=(160, 120),
                  pretrain=["trainer.max_epochs=36", "trainer.check_val_every_n_epoch=4"],
                  pretrain_runs=("tgn",))
# Full: the field's backbone and clip size (a GPU's job); fine-tuning on 16-frame clips.
_FULL_MODEL = ["model.backbone=r3d_18", "model.width=1.0", "clip.size=112",
               "clip.resize=[128,171]", "data.workers=8", "trainer.accelerator=auto",
               "trainer.devices=auto"]
FULL = DemoScale(
    classes=None, videos_per_class=40, frames=160, video_size=(320, 240),
    pretrain=[*_FULL_MODEL, "trainer.max_epochs=60"],
    finetune=[*_FULL_MODEL, "clip.len=16", "clip.stride=1", "model.dropout=0.5",
              "trainer.max_epochs=40"],
    pretrain_runs=("bn", "tgn", "tgn_sort"), workers=8,
)

PRETRAIN_VARIANTS = {
    "bn": ["model.norm=bn"],
    "tgn": ["model.norm=tgn"],
    "tgn_sort": ["model.norm=tgn", "pretext.objective=sort"],
}
ROW_NAMES = {"chance": "chance (learns nothing)", "scratch": "scratch (random init)",
             "bn": "playback speed, BN",
             "tgn": "playback speed, TGN", "tgn_sort": "clip sorting by speed, TGN"}


def _stage(name: str, done: Path, run: Callable[[], Any], log: Callable[[str], None]) -> dict:
    """Run a stage unless its ``done`` file exists; return the stage's metrics."""
    if done.is_file():
        log(f"[cached] {name}")
    else:
        log(f"[run] {name}")
        start = time.perf_counter()
        run()
        log(f"[done] {name} in {time.perf_counter() - start:.0f}s")
    return json.loads(done.read_text()) if done.suffix == ".json" else {}


def claim_run_dir(out: Path, settings: dict[str, Any], *, kind: str = "demo") -> None:
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


def demo_configs(data_root: Path, store: Path, scale: DemoScale, seed: int
                 ) -> tuple[Config, Config]:
    """The pretrain and fine-tune configs of the demo."""
    data = [f"data.videos={data_root / 'UCF-101'}", f"data.splits={data_root / 'ucfTrainTestlist'}",
            f"data.store={store}", f"seed={seed}"]
    return (load_config("pretrain/synthetic_cpu", data + scale.pretrain),
            load_config("finetune/synthetic_cpu", data + scale.finetune))


def prepare_data(out: Path, scale: DemoScale, seed: int, log: Callable[[str], None], *,
                 variant: str = "default", store_at_clip_size: bool = True
                 ) -> tuple[Config, Config]:
    """The synthetic dataset (``variant`` of the family) and its frame store under ``out``
    (cached stages); returns the pretrain and fine-tune configs that point at them.

    The store holds frames at the configs' ``clip.resize`` (the cheapest to read), or at
    ``prepare``'s default size as a user's would (``store_at_clip_size=False``).
    """
    from playspeed.data.prepare import REPORT, prepare_dataset
    from playspeed.data.synthetic import write_dataset

    data_root, store = out / "data", out / "store"
    _stage(f"synthetic dataset ({variant}, seed {seed})", data_root / "synth.json",
           lambda: write_dataset(data_root, num_classes=scale.classes,
                                 videos_per_class=scale.videos_per_class, seed=seed,
                                 variant=variant, size=scale.video_size, frames=scale.frames,
                                 progress=True), log)
    pretrain_config, finetune_config = demo_configs(data_root, store, scale, seed)
    size = {"resize": tuple(pretrain_config.clip.resize)} if store_at_clip_size else {}
    _stage("frame store", store / REPORT, lambda: prepare_dataset(
        "ucf101", videos=data_root / "UCF-101", splits=data_root / "ucfTrainTestlist",
        out=store, workers=scale.workers, **size), log)
    return pretrain_config, finetune_config


def train_stage(stage: str, run_dir: Path, fn: Callable[[bool], Any],
                log: Callable[[str], None]) -> dict:
    """A cached training stage that resumes from ``last.ckpt`` when it was interrupted."""
    from playspeed.tasks.trainer import last_checkpoint

    resume = last_checkpoint(run_dir).is_file()
    return _stage(stage, run_dir / "metrics.json", lambda: fn(resume), log)


def pretrain_row(out: Path, name: str, label: str, config: Config,
                 log: Callable[[str], None]) -> tuple[dict, Path]:
    """Pretrain ``out/pretrain_<name>`` (cached); returns its metrics and last checkpoint."""
    from playspeed.tasks.pretext import pretrain

    run_dir = out / f"pretrain_{name}"
    metrics = train_stage(f"pretrain ({label})", run_dir,
                          lambda resume: pretrain(config, run_dir, resume=resume), log)
    return metrics, run_dir / "checkpoints" / "last.ckpt"


def downstream_row(out: Path, name: str, label: str, *, init: Path | None, norm: str,
                   finetune_config: Config, seed: int, log: Callable[[str], None]
                   ) -> dict[str, float]:
    """Fine-tune (from ``init``, or from scratch) and test, then retrieval and k-NN / linear
    probe on the frozen backbone (random init for scratch), each a cached stage under
    ``out``; returns the row's readings."""
    from playspeed.tasks.base import backbone_from_config
    from playspeed.tasks.evaluation import evaluate
    from playspeed.tasks.features import FeatureCache
    from playspeed.tasks.finetune import finetune
    from playspeed.tasks.probe import probe_metrics
    from playspeed.tasks.retrieval import retrieval_metrics

    config = override_config(finetune_config, [f"model.norm={norm}"])
    run_dir = out / f"finetune_{name}"
    train_stage(f"fine-tune ({label})", run_dir,
                lambda resume: finetune(config, run_dir, init=init, resume=resume), log)
    test_metrics = _stage(f"test ({label})", run_dir / "test" / "metrics.json",
                          lambda: evaluate(run_dir / "checkpoints" / "last.ckpt",
                                           out=run_dir / "test"), log)
    if init is not None:
        from playspeed.tasks.checkpoints import load_task

        pretrained = load_task(init)
        backbone = pretrained.backbone
    else:
        import lightning as L

        L.seed_everything(seed, verbose=False)
        backbone = backbone_from_config(config)
    cache = FeatureCache(out / "features")
    retrieval = _stage(f"retrieval ({label})", out / f"retrieval_{name}" / "metrics.json",
                       lambda: retrieval_metrics(
                           backbone, finetune_config, out=out / f"retrieval_{name}", cache=cache,
                           num_clips=finetune_config.clip.test_clips, label=label), log)
    probe = _stage(f"k-NN and linear probe ({label})", out / f"probe_{name}" / "metrics.json",
                   lambda: probe_metrics(backbone, finetune_config, out=out / f"probe_{name}",
                                         cache=cache, label=label), log)
    if init is not None:  # the pretrained model's card gains its downstream numbers
        from playspeed.model_card import write_model_card

        pretrain_dir = init.parent.parent
        write_model_card(pretrain_dir, pretrained.config,
                         json.loads((pretrain_dir / "metrics.json").read_text()),
                         backbone=backbone, downstream={"fine-tuned": test_metrics,
                                                        "frozen": retrieval,
                                                        "frozen probe": probe})
    return {"video_top1": test_metrics["video_top1"], "clip_top1": test_metrics["clip_top1"],
            "retrieval_top1": retrieval["top1"], "retrieval_top5": retrieval["top5"],
            "knn_top1": probe["knn_top1"], "linear_top1": probe["linear_top1"]}


def downstream_chance(config: Config) -> dict[str, float]:
    """The readings of a model that learned nothing, on ``config``'s split: always the most
    frequent class (video and clip top-1, k-NN, linear probe) and a random ranking of the
    training videos (retrieval top-1 and top-5)."""
    from playspeed.data.sampling import constant_guess_accuracy
    from playspeed.tasks.data import load_records
    from playspeed.tasks.retrieval import retrieval_chance

    test = [record.label for record in load_records(config, "test")]
    gallery = [record.label for record in load_records(config, "train")]
    guess = constant_guess_accuracy(test)
    return {"video_top1": guess, "clip_top1": guess,
            "retrieval_top1": retrieval_chance(test, gallery, k=1),
            "retrieval_top5": retrieval_chance(test, gallery, k=5),
            "knn_top1": guess, "linear_top1": guess}


@locks_run_dir
def run_demo(out: Path, *, quick: bool = True, seed: int = 0, scale: DemoScale | None = None,
             log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Run (or resume) the demo under ``out``; returns the results table by row.

    ``scale`` overrides the quick/full presets (the tests run a tiny one).
    """
    from playspeed.report import write_demo_report

    scale = scale or (QUICK if quick else FULL)
    out = Path(out)
    claim_run_dir(out, {"seed": seed, "mode": "quick" if quick else "full",
                        "scale": asdict(scale)})
    pretrain_config, finetune_config = prepare_data(out, scale, seed, log)
    rows: dict[str, dict[str, float]] = {"chance": downstream_chance(finetune_config)}
    warnings: dict[str, str] = {}  # pretext runs that did not learn
    for name in ("scratch", *scale.pretrain_runs):
        row: dict[str, float] = {}
        init, norm = None, finetune_config.model.norm
        if name != "scratch":
            config = override_config(pretrain_config, PRETRAIN_VARIANTS[name])
            metrics, init = pretrain_row(out, name, ROW_NAMES[name], config, log)
            row["pretext_acc"] = metrics.get("pretext_val_acc", float("nan"))
            row["chance"] = metrics.get("pretext_val_chance", float("nan"))
            if metrics.get("pretext_warning"):
                warnings[name] = metrics["pretext_warning"]
            norm = config.model.norm
        row.update(downstream_row(out, name, ROW_NAMES[name], init=init, norm=norm,
                                  finetune_config=finetune_config, seed=seed, log=log))
        rows[name] = row
    write_demo_report(out, rows, row_names=ROW_NAMES, quick=quick, seed=seed,
                      warnings=warnings)
    return rows
