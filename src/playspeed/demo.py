"""``playspeed demo``: the whole method end to end on the embedded synthetic dataset.

Stages (:mod:`playspeed.stages`), each cached in the run directory so an interrupted demo
resumes where it stopped (a stage is done when its ``metrics.json`` exists; an interrupted
training run resumes from its ``last.ckpt``):

    synth -> prepare -> pretrain (BN, TGN; + TGN sort in full mode)
          -> fine-tune (scratch and each pretrained backbone, same budget) -> test
          -> retrieval and k-NN / linear probe (frozen backbones; scratch = random init)
          -> results table, report.md, plots

``--quick`` is sized for 2 CPU cores (under 10 minutes); full mode is the field's setting
(16x112x112, R3D-18) for a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from playspeed.config import override_config
from playspeed.io import atomic_write_text, write_json
from playspeed.report import plot_curves, results_table
from playspeed.rundir import locks_run_dir
from playspeed.stages import (
    Scale,
    claim_run_dir,
    downstream_row,
    prepare_synthetic,
    pretrain_stage,
)

# Quick: the synthetic_cpu configs (16-frame pretraining, 8-frame fine-tuning at stride 2)
# with 36 of their 120 pretraining epochs, the paper's objective and playback speed plus
# instance contrast side by side (TGN), and three fine-tunings: 6:04 on a quiet 2-core AMD
# EPYC with native bf16 (each pretraining 113 s and 150 s of it); a CPU without native bf16
# trains in fp32 and takes longer. BN against TGN is in the full mode and in
# `playspeed compare`. Its 45x60 frames are stored raw (8 kB a frame).
QUICK = Scale(classes=None, videos_per_class=20, frames=128, video_size=(160, 120),
              pretrain=["trainer.max_epochs=36"], pretrain_runs=("tgn", "tgn_contrast"),
              store_format="raw")
# Full: the field's backbone and clip size (a GPU's job); fine-tuning on 16-frame clips.
_FULL_MODEL = ["model.backbone=r3d_18", "model.width=1.0", "clip.size=112",
               "clip.resize=[128,171]", "data.workers=8", "trainer.accelerator=auto",
               "trainer.devices=auto"]
FULL = Scale(
    classes=None, videos_per_class=40, frames=160, video_size=(320, 240),
    pretrain=[*_FULL_MODEL, "trainer.max_epochs=60"],
    finetune=[*_FULL_MODEL, "clip.len=16", "clip.stride=1", "model.dropout=0.5",
              "trainer.max_epochs=40"],
    pretrain_runs=("bn", "tgn", "tgn_sort", "tgn_contrast"), workers=8,
)

PRETRAIN_VARIANTS = {
    "bn": ["model.norm=bn"],
    "tgn": ["model.norm=tgn"],
    "tgn_sort": ["model.norm=tgn", "pretext.objective=sort"],
    "tgn_contrast": ["model.norm=tgn", "pretext.objective=speed_contrast"],
}
ROW_NAMES = {"chance": "chance (learns nothing)", "scratch": "scratch (random init)",
             "bn": "playback speed, BN",
             "tgn": "playback speed, TGN", "tgn_sort": "clip sorting by speed, TGN",
             "tgn_contrast": "playback speed + instance contrast, TGN"}


DEMO_COLUMNS = {
    "pretext_acc": "pretext acc",
    "chance": "pretext chance",
    "video_top1": "video top-1",
    "clip_top1": "clip top-1",
    "retrieval_top1": "retrieval top-1",
    "retrieval_top5": "retrieval top-5",
    "knn_top1": "k-NN top-1",
    "linear_top1": "linear probe",
}


@locks_run_dir
def run_demo(out: Path, *, quick: bool = True, seed: int = 0, scale: Scale | None = None,
             log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Run (or resume) the demo under ``out``; returns the results table by row (the
    ``chance`` row: what a model that learned nothing reads, as the commands store it).

    ``scale`` overrides the quick/full presets (the tests run a tiny one).
    """
    scale = scale or (QUICK if quick else FULL)
    out = Path(out)
    claim_run_dir(out, {"seed": seed, "mode": "quick" if quick else "full",
                        "scale": asdict(scale)}, kind="demo")
    pretrain_config, finetune_config = prepare_synthetic(out, scale, seed, log)
    rows: dict[str, dict[str, float]] = {}
    warnings: dict[str, str] = {}  # pretext runs that did not learn
    for name in ("scratch", *scale.pretrain_runs):
        row: dict[str, float] = {}
        init, norm = None, finetune_config.model.norm
        if name != "scratch":
            config = override_config(pretrain_config, PRETRAIN_VARIANTS[name])
            metrics, init = pretrain_stage(out / f"pretrain_{name}", ROW_NAMES[name], config,
                                           log)
            row["pretext_acc"] = metrics.get("pretext_val_acc", float("nan"))
            row["chance"] = metrics.get("pretext_val_chance", float("nan"))
            if metrics.get("pretext_warning"):
                warnings[name] = metrics["pretext_warning"]
            norm = config.model.norm
        readings, chance = downstream_row(out, name, ROW_NAMES[name], init=init, norm=norm,
                                          finetune_config=finetune_config, seed=seed, log=log)
        rows.setdefault("chance", chance)
        rows[name] = row | readings
    write_demo_report(out, rows, row_names=ROW_NAMES, quick=quick, seed=seed,
                      warnings=warnings)
    return rows


def write_demo_report(out: Path, rows: dict[str, dict[str, float]], *,
                      row_names: dict[str, str], quick: bool, seed: int,
                      warnings: dict[str, str] | None = None) -> Path:
    """``OUT/report.md`` with the results table, training curves and the retrieval figure;
    ``OUT/results.json`` with the same numbers. Prints the table. ``warnings``: per
    pretrained row, why its pretext did not learn (shown under the table)."""
    out = Path(out)
    plots = out / "plots"
    models = [n for n in rows if n != "chance"]
    pretrained = [n for n in models if n != "scratch"]
    plot_curves({row_names[n]: out / f"pretrain_{n}" for n in pretrained},
                ["train/loss", "val/pretext_acc"], plots / "pretrain_curves.png",
                title="pretext training")
    plot_curves({row_names[n]: out / f"finetune_{n}" for n in models},
                ["train/loss", "val/acc"], plots / "finetune_curves.png", title="fine-tuning")
    best = max(pretrained, key=lambda n: rows[n]["retrieval_top1"], default="scratch")
    table = results_table(rows, row_names, DEMO_COLUMNS)
    warnings = warnings or {}
    write_json(out / "results.json", {"mode": "quick" if quick else "full", "seed": seed,
                                      "rows": rows, "pretext_warnings": warnings})
    checks = "\n".join(f"- **{row_names[n]}**: {w}" for n, w in warnings.items()) or \
        "Every pretext ended above chance (accuracy and loss)."
    text = f"""# playspeed demo ({'quick' if quick else 'full'} mode, seed {seed})

Synthetic action dataset (UCF-101 layout, classes told apart only by motion); every model
has the same architecture and fine-tuning budget. Percentages on the test split: video
top-1 averages softmax scores over 10 evenly spaced clips; retrieval and k-NN use frozen
features (test videos query the training videos); pretext accuracy is measured on held-out
training videos (speed and direction both right). The chance row is what a model that
learned nothing reads: the most frequent class, and for retrieval a random ranking. Each
stage's `metrics.json` states its protocol in full.

{table}

## Did the pretext learn?

{checks}

## Training curves

![pretext training](plots/pretrain_curves.png)

![fine-tuning](plots/finetune_curves.png)

## Retrieval ({row_names[best]})

Each row: a test video (left) and its five nearest training videos, framed green when the
class matches.

![retrieval](retrieval_{best}/plots/retrieval.png)

## Confusion matrix after fine-tuning ({row_names[best]})

![confusion](finetune_{best}/test/plots/confusion.png)
"""
    atomic_write_text(out / "report.md", text)
    print(table)
    return out / "report.md"
