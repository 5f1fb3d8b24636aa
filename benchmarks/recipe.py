"""The CPU recipe over members of the synthetic family: does pretraining help on data the
recipe was not tuned on, and which pretext objective helps most?

For every variant and seed (the chain is built from :mod:`playspeed.stages`): ``synth`` (the
variant, that seed) -> ``prepare`` (its defaults) -> ``pretrain`` with each objective
(``pretrain/synthetic_cpu``, ``pretext.objective`` set; the same clips seen by all) ->
``finetune`` (``finetune/synthetic_cpu``) from each pretrained backbone, from scratch, and
from scratch for as many clip passes as pretraining and fine-tuning together (equal
compute) -> ``test`` -> frozen retrieval and probes of each pretrained backbone and of the
untrained one. The tables give, per arm, video top-1 (the fine-tuning runs in brackets), the
share of scratch's errors that the arm removes, frozen retrieval top-1 and the linear probe,
each with its chance level, and clips seen.

One fine-tuning run moves by up to ~20 points with its seed, or with the thread count
alone (float rounding), on ~170 training videos; ``--finetune-seeds`` fine-tunes each arm
with several seeds (the equal-compute arm with ``--equal-compute-seeds``) and the tables
give their mean.

    python benchmarks/recipe.py --variants field,crowd,no-reversal --seeds 0,1,2 \\
        --finetune-seeds 0,1,2 --objectives classify,speed_contrast --out runs/recipe
    python benchmarks/recipe.py --variants default --seeds 0 --classes 3 --videos-per-class 4 \\
        --frames 40 --size 64 48 --override trainer.max_epochs=1

Stages are cached in ``OUT/<variant>/seed<S>/`` (a stage is done when its metrics file
exists), so an interrupted run resumes. ``--pretrain-override`` / ``--finetune-override``
(repeatable) go to one config, ``--override`` to both. Fine-tuning arm ``A`` with the chain's
own seed runs in ``finetune_<A>``, with another seed ``S`` in ``finetune_<A>_seed<S>``.
Writes ``OUT/results.json``, ``OUT/table.md`` (one row per chain and arm) and
``OUT/summary.md`` (each arm's mean over the chains).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from playspeed.config import override_config
from playspeed.console import quiet_dependencies
from playspeed.io import atomic_write_text, write_json
from playspeed.stages import (
    Scale,
    equal_compute_config,
    finetune_and_test,
    frozen_readings,
    prepare_synthetic,
    pretrain_stage,
    untrained_backbone,
)
from playspeed.tasks.features import FeatureCache
from playspeed.tasks.metrics import errors_removed
from playspeed.tasks.registry import load_task

SCRATCH, LONG, UNTRAINED = "scratch", "scratch_equal_compute", "untrained"
ARM_NAMES = {SCRATCH: "scratch (random init)",
             LONG: "scratch, equal compute (pretraining + fine-tuning clips)",
             UNTRAINED: "untrained backbone (frozen readings)"}


def _finetune_arm(out: Path, arm: str, config, *, init: Path | None, seeds: Sequence[int],
                  own_seed: int, log) -> list[dict]:
    """Fine-tune and test arm ``arm`` once per seed; returns each run's test metrics with
    its ``clips_seen`` and ``train_videos``."""
    runs = []
    for finetune_seed in seeds:
        own = finetune_seed == own_seed  # a single-seed run's directory, so its cache holds
        run_dir = out / (f"finetune_{arm}" if own else f"finetune_{arm}_seed{finetune_seed}")
        label = arm if own else f"{arm}, fine-tuning seed {finetune_seed}"
        seeded = override_config(config, [f"seed={finetune_seed}"])
        tuned, test = finetune_and_test(run_dir, label, seeded, init=init, log=log)
        runs.append({**test, "clips_seen": tuned["clips_seen"],
                     "train_videos": tuned["train_videos"]})
    return runs


def _frozen(out: Path, arm: str, backbone, config, log) -> dict:
    retrieval, probe = frozen_readings(out, arm, f"{arm}, frozen", backbone, config,
                                       cache=FeatureCache(out / "features"), log=log)
    return {"retrieval_top1": retrieval["top1"], "retrieval_chance": retrieval["chance_top1"],
            "linear_top1": probe["linear_top1"], "knn_top1": probe["knn_top1"],
            "probe_chance": probe["chance_top1"]}


def _video(runs: list[dict]) -> dict:
    top1 = [run["video_top1"] for run in runs]
    return {"video_top1": round(statistics.mean(top1), 2), "video_top1_runs": top1,
            "video_chance": runs[0]["chance_top1"], "finetune_clips": runs[0]["clips_seen"]}


def run_chain(out: Path, *, variant: str, seed: int, scale: Scale,
              objectives: Sequence[str] = ("classify",), finetune_seeds: Sequence[int] = (),
              equal_compute_seeds: Sequence[int] | None = None, log=print) -> dict:
    """One variant and seed through the whole chain (cached stages); returns its readings:
    ``arms`` (arm name -> readings) and the chain's settings.

    ``finetune_seeds``: the seeds each fine-tuning arm runs with (default: ``seed`` only);
    ``equal_compute_seeds``: those of the equal-compute scratch arm (default: the same).
    """
    started = time.perf_counter()
    finetune_seeds = list(finetune_seeds or (seed,))
    long_seeds = finetune_seeds if equal_compute_seeds is None else list(equal_compute_seeds)
    # A user's chain: the store at `prepare`'s default size, not the clips'.
    pretrain_config, finetune_config = prepare_synthetic(out, scale, seed, log, variant=variant,
                                                         store_at_clip_size=False)
    finetune_config = override_config(finetune_config,
                                      [f"model.norm={pretrain_config.model.norm}"])
    arms: dict[str, dict] = {}
    scratch = _finetune_arm(out, SCRATCH, finetune_config, init=None, seeds=finetune_seeds,
                            own_seed=seed, log=log)
    arms[SCRATCH] = _video(scratch)
    for objective in objectives:
        config = override_config(pretrain_config, [f"pretext.objective={objective}"])
        pretext, init = pretrain_stage(out / f"pretrain_{objective}", f"pretrain {objective}",
                                       config, log)
        runs = _finetune_arm(out, objective, finetune_config, init=init, seeds=finetune_seeds,
                             own_seed=seed, log=log)
        arms[objective] = {
            "objective": objective, "pretext_clips": pretext["clips_seen"],
            "pretext_learned": pretext.get("pretext_learned"),
            **{key: pretext.get(key) for key in ("speed_val_acc", "speed_val_chance",
                                                 "direction_val_acc", "direction_val_chance",
                                                 "instance_val_acc", "instance_val_chance")},
            **_video(runs), **_frozen(out, objective, load_task(init).backbone,
                                      finetune_config, log)}
    # As many clip passes as the first objective's pretraining and fine-tuning together.
    if objectives and long_seeds:
        long_config = equal_compute_config(
            finetune_config, pretext_clips=arms[objectives[0]]["pretext_clips"],
            scratch=scratch[0])
        arms[LONG] = _video(_finetune_arm(out, LONG, long_config, init=None, seeds=long_seeds,
                                          own_seed=seed, log=log))
    arms[UNTRAINED] = _frozen(out, UNTRAINED, untrained_backbone(finetune_config, seed),
                              finetune_config, log)
    for name, arm in arms.items():
        if "video_top1" in arm and name != SCRATCH:
            arm["errors_removed"] = round(errors_removed(arm["video_top1"],
                                                         arms[SCRATCH]["video_top1"]), 2)
    # Wall time of the whole chain, summed over the runs that built it (a resume adds on).
    wall = out / "wall.json"
    seconds = time.perf_counter() - started + (
        json.loads(wall.read_text())["seconds"] if wall.is_file() else 0.0)
    write_json(wall, {"seconds": seconds})
    return {"variant": variant, "seed": seed, "arms": arms, "wall_s": round(seconds, 1)}


COLUMNS = ("variant", "seed", "arm", "pretext speed % (chance)", "video top-1 (runs)",
           "video chance", "scratch's errors removed %", "retrieval top-1 (chance)",
           "linear probe (chance)", "clips seen (pretext + fine-tune)")


def _pair(value, chance) -> str:
    return "-" if value is None else f"{value:.1f} ({chance:.1f})"


def _runs(arm: dict) -> str:
    if "video_top1" not in arm:
        return "-"
    runs = arm["video_top1_runs"]
    mean = f"{arm['video_top1']:.1f}"
    return mean if len(runs) < 2 else f"{mean} ({', '.join(f'{top1:.1f}' for top1 in runs)})"


def _arm_cells(name: str, arm: dict) -> list[str]:
    return [ARM_NAMES.get(name, name),
            _pair(arm.get("speed_val_acc"), arm.get("speed_val_chance")),
            _runs(arm), "-" if "video_chance" not in arm else f"{arm['video_chance']:.1f}",
            "-" if "errors_removed" not in arm else f"{arm['errors_removed']:+.1f}",
            _pair(arm.get("retrieval_top1"), arm.get("retrieval_chance")),
            _pair(arm.get("linear_top1"), arm.get("probe_chance")),
            "-" if "finetune_clips" not in arm else
            f"{arm.get('pretext_clips', 0)} + {arm['finetune_clips']}"]


def format_table(rows: list[dict]) -> str:
    """A Markdown table, one row per chain (variant, seed) and arm."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        for name, arm in row["arms"].items():
            cells = [row["variant"], str(row["seed"]), *_arm_cells(name, arm)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per arm, the mean over chains of each reading (its chains' count in ``chains``)."""
    readings = ("video_top1", "errors_removed", "retrieval_top1", "linear_top1",
                "speed_val_acc", "instance_val_acc")
    summary: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(name for row in rows for name in row["arms"]):
        arms = [row["arms"][name] for row in rows if name in row["arms"]]
        summary[name] = {"chains": len(arms), **{
            key: round(statistics.mean(arm[key] for arm in arms), 2)
            for key in readings if all(arm.get(key) is not None for arm in arms)}}
    return summary


def format_summary(summary: dict[str, dict[str, float]]) -> str:
    keys = {"video_top1": "video top-1", "errors_removed": "scratch's errors removed %",
            "retrieval_top1": "retrieval top-1", "linear_top1": "linear probe",
            "speed_val_acc": "pretext speed %", "instance_val_acc": "held-out instance top-1"}
    lines = ["| arm (mean over chains) | chains | " + " | ".join(keys.values()) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    for name, means in summary.items():
        cells = ["-" if key not in means else f"{means[key]:.1f}" for key in keys]
        lines.append(f"| {ARM_NAMES.get(name, name)} | {means['chains']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _list(text: str, kind=str) -> list:
    return [kind(item) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="default", type=_list,
                        help="comma-separated names of playspeed.data.synthetic.VARIANTS")
    parser.add_argument("--seeds", default="0", type=lambda text: _list(text, int),
                        help="comma-separated seeds (each: its own dataset and training)")
    parser.add_argument("--objectives", default="classify", type=_list,
                        help="comma-separated pretext objectives, each pretrained at the same "
                             "clips seen; the first sets the equal-compute scratch budget")
    parser.add_argument("--finetune-seeds", default=(), type=lambda text: _list(text, int),
                        help="comma-separated seeds each fine-tuning arm runs with; the "
                             "table gives their mean (default: the chain's seed)")
    parser.add_argument("--equal-compute-seeds", default=None,
                        type=lambda text: _list(text, int),
                        help="seeds of the equal-compute scratch arm (default: the "
                             "fine-tuning seeds; an empty string leaves the arm out)")
    parser.add_argument("--out", type=Path, default=Path("runs/recipe"))
    parser.add_argument("--classes", type=int, default=None,
                        help="the first N classes of the variant's set (default all)")
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help="N or LOW HIGH (default: the variant's)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                        help="video size (default: the variant's)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for pretraining and fine-tuning")
    parser.add_argument("--pretrain-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--finetune-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workers", type=int, default=2, help="processes for prepare")
    args = parser.parse_args(argv)
    quiet_dependencies()  # as the CLI: stages and results, not the libraries' notices
    frames = args.frames and tuple((args.frames * 2)[:2])
    scale = Scale(classes=args.classes, videos_per_class=args.videos_per_class,
                  frames=frames, video_size=args.size and tuple(args.size),
                  pretrain=[*args.override, *args.pretrain_override],
                  finetune=[*args.override, *args.finetune_override],
                  pretrain_runs=(), workers=args.workers)
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            rows.append(run_chain(args.out / variant / f"seed{seed}", variant=variant,
                                  seed=seed, scale=scale, objectives=args.objectives,
                                  finetune_seeds=args.finetune_seeds,
                                  equal_compute_seeds=args.equal_compute_seeds))
    table, summary = format_table(rows), summarize(rows)
    write_json(args.out / "results.json", {"settings": vars(args) | {"out": str(args.out)},
                                           "rows": rows, "summary": summary})
    atomic_write_text(args.out / "table.md", table + "\n")
    atomic_write_text(args.out / "summary.md", format_summary(summary) + "\n")
    print(table)
    print()
    print(format_summary(summary))
    return rows


if __name__ == "__main__":
    main()
