"""``playspeed compare``: the pretext objectives side by side at equal cost, on one harness.

Every chosen objective (:mod:`playspeed.objectives`) is pretrained on the demo's synthetic
dataset with the same backbone, then fine-tuned, tested, and read by retrieval, k-NN and
a linear probe exactly as the demo does (its stages, cached the same way: an interrupted
comparison resumes, a finished one reruns from cache). Rows: chance (what a model that
learned nothing scores), scratch (random init), each objective with the config's norm (TGN),
and ``classify`` with BatchNorm. The synthetic set
may be any named variant (:data:`playspeed.data.synthetic.VARIANTS`); several seeds run one
after another, each in its own directory, and are summarised as mean ± std.

Equal cost is equal *clips seen*: every pretraining takes the same number of optimiser
steps with the same number of clips per step (``optim.batch_size x pretext.num_clips`` of
the reference, ``classify`` with the config's settings). An objective drawing fewer clips
per sample gets proportionally more samples per batch: one-clip ``direction`` and
``rotation`` (their published setting) see 3x as many samples per step, and so 3x as many
epochs, as three-clip ``classify``, ``sort`` or ``vcop``. The BN/TGN statistics therefore
see the same number of clips per batch in every run. Fine-tuning is identical for all rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from playspeed.chance import PRETEXT_RULE
from playspeed.config import Config, override_config
from playspeed.data.synthetic import synth_options
from playspeed.demo import FULL, QUICK, ROW_NAMES
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_text, write_json
from playspeed.objectives import OBJECTIVES
from playspeed.report import plot_curves, plot_result_bars, results_table
from playspeed.rundir import locks_run_dir
from playspeed.stages import (
    FROZEN_READINGS,
    Scale,
    claim_run_dir,
    downstream_row,
    prepare_synthetic,
    pretrain_stage,
    scratch_equal_compute,
)
from playspeed.tasks.metrics import errors_removed
from playspeed.tasks.pretext import pretrain_datasets

DEFAULT_OBJECTIVES = tuple(OBJECTIVES)
#: The rows that are not a pretext objective.
FIXED_ROWS = {"chance": ROW_NAMES["chance"],
              "untrained": "untrained backbone (frozen readings)",
              "scratch": "scratch (fine-tuned from random init)",
              "scratch_equal_compute": "scratch, equal compute (pretraining + fine-tuning clips)"}


def row_name(objective: str, norm: str) -> str:
    return objective if norm == "tgn" else f"{objective}_{norm}"


def row_label(name: str) -> str:
    """``classify_bn`` -> ``classify (BN)``; ``speed_contrast`` -> ``speed_contrast (TGN)``;
    ``scratch`` -> ``scratch (random init)``."""
    if name in FIXED_ROWS:
        return FIXED_ROWS[name]
    if name in OBJECTIVES:  # an objective's name may hold "_" itself
        return f"{name} (TGN)"
    objective, _, norm = name.rpartition("_")
    return f"{objective} ({norm.upper()})"


def budget_overrides(config: Config, reference: Config, *, train_videos: int,
                     reference_videos: int) -> list[str]:
    """Overrides that give ``config`` the reference's budget in clips seen.

    The reference trains ``max_epochs`` epochs of ``floor(videos / batch)`` steps (a last
    partial batch is dropped) at ``batch x num_clips`` clips a step. ``config`` keeps the
    clips per step (its batch is ``reference clips per step / its num_clips``) and the
    number of steps (``trainer.max_steps``; ``max_epochs`` is the epochs they span), and
    warms up over the same number of steps.
    """
    clips_per_step = reference.optim.batch_size * reference.pretext.num_clips
    if clips_per_step % config.pretext.num_clips:
        raise PlayspeedError(f"compare: {clips_per_step} clips per step do not split into "
                             f"samples of {config.pretext.num_clips} clips")
    batch = clips_per_step // config.pretext.num_clips
    reference_epoch = max(1, reference_videos // reference.optim.batch_size)
    epoch = max(1, train_videos // batch)
    steps = reference.trainer.max_epochs * reference_epoch
    warmup = reference.optim.warmup_epochs * reference_epoch / epoch
    return [f"optim.batch_size={batch}", f"trainer.max_steps={steps}",
            f"trainer.max_epochs={math.ceil(steps / epoch)}", f"optim.warmup_epochs={warmup}"]


def _train_videos(config: Config) -> int:
    """Pretext training samples per epoch (videos long enough for the objective)."""
    return len(pretrain_datasets(config)[0])


def comparison_configs(pretrain_config: Config, objectives: Sequence[str]
                       ) -> dict[str, Config]:
    """The pretrain config of every row (``classify`` with TGN first, with BN last), at equal
    cost; each objective takes its published clips per sample, else the config's."""
    clips = pretrain_config.pretext.num_clips
    runs = {row_name(o, "tgn"): [f"pretext.objective={o}", "model.norm=tgn",
                                 f"pretext.num_clips={OBJECTIVES[o].published_clips or clips}"]
            for o in ("classify", *objectives)}
    runs["classify_bn"] = [*runs["classify"], "model.norm=bn"]
    configs = {name: override_config(pretrain_config, overrides)
               for name, overrides in runs.items()}
    reference = configs["classify"]
    reference_videos = _train_videos(reference)
    return {name: override_config(config, budget_overrides(
        config, reference, train_videos=_train_videos(config), reference_videos=reference_videos))
        for name, config in configs.items()}


@locks_run_dir
def run_compare(out: Path, *, objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                quick: bool = True, seed: int = 0, variant: str = "default",
                scale: Scale | None = None, overrides: Sequence[str] = (),
                log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Run (or resume) the comparison under ``out``; returns the results table by row.

    Writes ``compare.md`` (table and chart), ``results.json`` and ``plots/compare.png``.
    ``variant`` names the synthetic set; ``scale`` overrides the quick/full presets (the
    tests run a tiny one); ``overrides`` (dotted ``key=value``) apply to every pretraining
    and fine-tuning alike.
    """
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives:
        raise PlayspeedError(f"--objectives: unknown {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(OBJECTIVES)}")
    synth_options(variant)  # an unknown variant fails here, before any stage runs
    objectives = tuple(dict.fromkeys(objectives))  # once each, in the order given
    scale = scale or (QUICK if quick else FULL)
    if variant != "default":  # its video lengths are part of what a variant varies
        scale = replace(scale, frames=None)
    out = Path(out)
    claim_run_dir(out, {"seed": seed, "mode": "quick" if quick else "full",
                        "variant": variant, "objectives": list(objectives),
                        "scale": asdict(scale), "overrides": list(overrides)}, kind="compare")
    pretrain_config, finetune_config = (
        override_config(config, list(overrides))
        for config in prepare_synthetic(out, scale, seed, log, variant=variant))
    configs = comparison_configs(pretrain_config, objectives)
    random_init, chance = downstream_row(
        out, "scratch", row_label("scratch"), init=None, norm=finetune_config.model.norm,
        finetune_config=finetune_config, seed=seed, log=log)
    rows: dict[str, dict[str, Any]] = {
        "chance": chance,
        "untrained": {k: v for k, v in random_init.items() if k in FROZEN_READINGS},
        "scratch": {k: v for k, v in random_init.items() if k not in FROZEN_READINGS}}
    for name, config in configs.items():
        metrics, init = pretrain_stage(out / f"pretrain_{name}", row_label(name), config, log)
        pretext = config.pretext
        readings, _ = downstream_row(out, name, row_label(name), init=init,
                                     norm=config.model.norm, finetune_config=finetune_config,
                                     seed=seed, log=log)
        rows[name] = {
            "objective": pretext.objective, "norm": config.model.norm,
            "pretext_acc": metrics.get("pretext_val_acc", float("nan")),
            "pretext_warning": metrics.get("pretext_warning"),  # None: it learned
            # the chance the pretext check judged by: the grid's own, as measured
            "chance": metrics["pretext_val_chance"],
            "clips_seen": metrics["clips_seen"],
            **readings,
            "errors_removed": errors_removed(readings["video_top1"],
                                             rows["scratch"]["video_top1"]),
        }
        if name == "classify":  # the reference budget: scratch with the same compute
            equal = scratch_equal_compute(out, finetune_config,
                                          pretext_clips=metrics["clips_seen"], log=log)
            rows["scratch_equal_compute"] = {
                **equal, "errors_removed": errors_removed(equal["video_top1"],
                                                          rows["scratch"]["video_top1"])}
    order = ("chance", "untrained", "scratch", "scratch_equal_compute")
    rows = {**{name: rows[name] for name in order}, **rows}
    write_compare_report(out, rows, row_names={name: row_label(name) for name in rows},
                         quick=quick, seeds=[seed], variant=variant)
    return rows


#: Row entries that are settings, not readings: the same for every seed, no spread.
SETTINGS = ("objective", "norm", "chance", "clips_seen")


def summarize_seeds(results: dict[int, dict[str, dict[str, Any]]]
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]]]:
    """Per row, the mean of every reading over seeds and its sample standard deviation
    (``{seed: rows}`` -> ``(means, stds)``; settings are copied from the first seed, and
    per-seed notes such as ``pretext_warning`` stay in ``results``)."""
    seeds = list(results)
    means: dict[str, dict[str, Any]] = {}
    stds: dict[str, dict[str, float]] = {}
    for name, first in results[seeds[0]].items():
        readings = [key for key, value in first.items() if key not in SETTINGS
                    and isinstance(value, int | float) and not isinstance(value, bool)]
        values = {key: np.array([results[s][name][key] for s in seeds], dtype=float)
                  for key in readings}
        means[name] = {**{key: first[key] for key in SETTINGS if key in first},
                       **{key: float(v.mean()) for key, v in values.items()}}
        stds[name] = {key: float(v.std(ddof=1)) if len(seeds) > 1 else 0.0
                      for key, v in values.items()}
    return means, stds


@locks_run_dir
def run_compare_seeds(out: Path, *, seeds: Sequence[int], quick: bool = True,
                      variant: str = "default", log: Callable[[str], None] = print,
                      **kwargs: Any) -> dict[int, dict[str, dict[str, float]]]:
    """The comparison for each seed; returns ``{seed: rows}``.

    One seed runs in ``out`` itself. Several run one after another in ``out/seed<S>`` (each
    cached and resumable on its own), and ``out/compare.md``, ``results.json`` and
    ``plots/compare.png`` give the mean ± std over seeds, with every seed's value in
    ``results.json``.
    """
    seeds = list(dict.fromkeys(seeds))
    if len(seeds) == 1:
        return {seeds[0]: run_compare(out, quick=quick, seed=seeds[0], variant=variant,
                                      log=log, **kwargs)}
    results = {seed: run_compare(Path(out) / f"seed{seed}", quick=quick, seed=seed,
                                 variant=variant, log=log, **kwargs) for seed in seeds}
    means, stds = summarize_seeds(results)
    write_compare_report(out, means, row_names={name: row_label(name) for name in means},
                         quick=quick, seeds=seeds, variant=variant, spread=stds,
                         per_seed=results)
    return results


COMPARE_COLUMNS = {
    "pretext_acc": "pretext acc",
    "chance": "pretext chance",
    "video_top1": "video top-1",
    "errors_removed": "scratch's errors removed %",
    "retrieval_top1": "retrieval top-1",
    "retrieval_top5": "retrieval top-5",
    "knn_top1": "k-NN top-1",
    "linear_top1": "linear probe",
}


def write_compare_report(out: Path, rows: dict[str, dict[str, Any]], *,
                         row_names: dict[str, str], quick: bool, seeds: Sequence[int],
                         variant: str = "default",
                         spread: dict[str, dict[str, float]] | None = None,
                         per_seed: dict[int, dict[str, dict[str, Any]]] | None = None) -> Path:
    """``OUT/compare.md`` (table, bar chart, training curves), ``OUT/results.json`` (the same
    numbers) and ``OUT/plots/compare.png``. Prints the table.

    One seed: ``rows`` are its readings and ``OUT/pretrain_<row>`` its runs. Several:
    ``rows`` are means over seeds, ``spread`` their standard deviations, ``per_seed`` every
    seed's rows (their runs and curves are in ``OUT/seed<S>``).
    """
    out = Path(out)
    plots = out / "plots"
    # the chart draws readings; chance is a marker, the errors removed follow from video top-1
    columns = {k: v for k, v in COMPARE_COLUMNS.items() if k not in ("chance", "errors_removed")}
    models = {name: row for name, row in rows.items() if name != "chance"}
    plot_result_bars(models, row_names, columns, plots / "compare.png", spread=spread,
                     baseline=rows.get("chance"),
                     title="pretext objectives at equal cost (chance: dashed per pretext, "
                           "dotted for the test readings"
                           + (f"; whiskers: std over {len(seeds)} seeds)" if spread else ")"))
    table = results_table(rows, row_names, COMPARE_COLUMNS, spread=spread)
    clips = sorted({round(row["clips_seen"]) for row in rows.values() if "objective" in row})
    summary = {"mode": "quick" if quick else "full", "variant": variant}
    if per_seed:
        write_json(out / "results.json", {**summary, "seeds": list(seeds), "rows": rows,
                                          "std": spread, "per_seed": per_seed})
        runs = "Mean ± standard deviation over seeds; each seed's report: " + ", ".join(
            f"[seed {s}](seed{s}/compare.md)" for s in seeds) + "."
        curves = ""
    else:
        write_json(out / "results.json", {**summary, "seed": seeds[0], "rows": rows})
        plot_curves({row_names[n]: out / f"pretrain_{n}" for n in models
                     if "objective" in rows[n]},
                    ["train/loss", "val/pretext_acc"], plots / "pretrain_curves.png",
                    title="pretext training")
        runs = ""
        curves = "\n![pretext training](plots/pretrain_curves.png)\n"
    by_seed = per_seed or {seeds[0]: rows}
    failed = {name: [seed for seed, seed_rows in by_seed.items()
                     if seed_rows[name].get("pretext_warning")] for name in models}
    checks = "\n".join(
        f"- **{row_names[n]}**: seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}"
        for n, s in failed.items() if s)
    checks = (f"**The pretext did not learn** ({PRETEXT_RULE}; the run's `metrics.json` says "
              "what to try):\n\n"
              + checks) if checks else "Every pretext ended above chance (accuracy and loss)."
    seed_text = ", ".join(str(s) for s in seeds)
    text = f"""# playspeed compare ({'quick' if quick else 'full'} mode, synthetic set \
`{variant}`, seed{'s' if len(seeds) > 1 else ''} {seed_text})

Each pretext objective pretrains the same backbone on the synthetic set for the same
budget in clips seen ({', '.join(f'{c:,}' for c in clips)}: the same optimiser steps and
clips per step), then every model is fine-tuned, tested and read out the same way.
Percentages on the test split: video top-1 after fine-tuning (softmax averaged over evenly
spaced clips); retrieval, k-NN and linear probe on frozen features (test videos query the
training videos). The untrained backbone is the random init, read frozen; scratch fine-tunes
it as every row is fine-tuned, and scratch with equal compute for as many clip passes as the
`classify` pretraining and its fine-tuning together: does pretraining beat training longer
on the labels? A row's share of scratch's errors removed is 100 (a - s) / (100 - s) of its
video top-1 a against scratch's s. Pretext accuracy is measured on held-out training
videos (whole scenes where the names give them) and means a different task per objective:
compare it with its own chance level, not across rows. That chance is the accuracy of always
answering the most frequent label of the objective's validation items (short videos leave
some speeds out), the level the "did not learn" check below judges by. Each stage's
`metrics.json` states its protocol in full. {runs}

{table}

{checks}

![comparison](plots/compare.png)
{curves}"""
    atomic_write_text(out / "compare.md", text)
    print(table)
    return out / "compare.md"
