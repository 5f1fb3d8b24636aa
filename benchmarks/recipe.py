"""The CPU recipe over members of the synthetic family: does pretraining help on data the
recipe was not tuned on?

For every variant and seed (the chain is built from :mod:`playspeed.stages`): ``synth`` (the
variant, that seed) -> ``prepare`` (its defaults) -> ``pretrain`` (``pretrain/synthetic_cpu``)
-> ``finetune`` from the pretrained backbone and from scratch (``finetune/synthetic_cpu``,
same budget) -> ``test`` -> frozen retrieval and probes of the pretrained backbone; then one
table: pretext speed and direction accuracy (with chance), video top-1 pretrained and scratch
(with chance), retrieval top-1 (with chance), clips seen by each training, wall time of the
chain.

One fine-tuning run moves by up to ~20 points with its seed, or with the thread count
alone (float rounding), on ~170 training videos; ``--finetune-seeds`` fine-tunes each arm
with several seeds and the table gives their mean, the runs in brackets.

    python benchmarks/recipe.py --variants field,mirror --seeds 0,1,2 --out runs/recipe \\
        --pretrain-override optim.lr=0.002
    python benchmarks/recipe.py --variants default --seeds 0 --classes 3 --videos-per-class 4 \\
        --frames 40 --size 64 48 --override trainer.max_epochs=1
    python benchmarks/recipe.py --variants field --seeds 0,1,2 --finetune-seeds 0,1,2

Stages are cached in ``OUT/<variant>/seed<S>/`` (a stage is done when its metrics file
exists), so an interrupted run resumes. ``--pretrain-override`` / ``--finetune-override``
(repeatable) go to one config, ``--override`` to both. Fine-tuning with the chain's own
seed runs in ``finetune_<arm>``, with another seed ``S`` in ``finetune_<arm>_seed<S>``.
Writes ``OUT/results.json`` and ``OUT/table.md``.
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
    finetune_and_test,
    frozen_readings,
    prepare_synthetic,
    pretrain_stage,
)
from playspeed.tasks.features import FeatureCache
from playspeed.tasks.registry import load_task

COLUMNS = {
    "variant": "variant", "seed": "seed",
    "speed": "pretext speed % (chance)", "direction": "pretext direction % (chance)",
    "learned": "pretext learned",
    "pretrained": "video top-1 pretrained", "scratch": "video top-1 scratch",
    "video_chance": "video chance", "retrieval": "retrieval top-1 (chance)",
    "pretext_clips": "pretext clips", "finetune_clips": "fine-tune clips", "wall": "wall (s)",
}


def run_chain(out: Path, *, variant: str, seed: int, scale: Scale,
              finetune_seeds: Sequence[int] = (), log=print) -> dict:
    """One variant and seed through the whole chain (cached stages); returns its row.

    ``finetune_seeds``: the seeds each fine-tuning arm runs with (default: ``seed`` only).
    """
    started = time.perf_counter()
    # A user's chain: the store at `prepare`'s default size, not the clips'.
    pretrain_config, finetune_config = prepare_synthetic(out, scale, seed, log, variant=variant,
                                                         store_at_clip_size=False)
    finetune_config = override_config(finetune_config,
                                      [f"model.norm={pretrain_config.model.norm}"])
    pretext, init = pretrain_stage(out / "pretrain", "pretrain", pretrain_config, log)
    videos = {}
    for name, weights in (("pretrained", init), ("scratch", None)):
        videos[name] = []
        for finetune_seed in finetune_seeds or (seed,):
            own = finetune_seed == seed  # a single-seed run's directory, so its cache holds
            run_dir = out / (f"finetune_{name}" if own else f"finetune_{name}_seed{finetune_seed}")
            label = name if own else f"{name}, fine-tuning seed {finetune_seed}"
            config = override_config(finetune_config, [f"seed={finetune_seed}"])
            tuned, test = finetune_and_test(run_dir, label, config, init=weights, log=log)
            videos[name].append((test["video_top1"], tuned.get("clips_seen")))
    retrieval, _ = frozen_readings(out, "pretrained", "pretrained, frozen",
                                   load_task(init).backbone, finetune_config,
                                   cache=FeatureCache(out / "features"), log=log)
    # Wall time of the whole chain, summed over the runs that built it (a resume adds on).
    wall = out / "wall.json"
    seconds = time.perf_counter() - started + (
        json.loads(wall.read_text())["seconds"] if wall.is_file() else 0.0)
    write_json(wall, {"seconds": seconds})
    return {
        "variant": variant, "seed": seed,
        "speed_acc": pretext.get("speed_val_acc"), "speed_chance": pretext.get("speed_val_chance"),
        "direction_acc": pretext.get("direction_val_acc"),
        "direction_chance": pretext.get("direction_val_chance"),
        "pretext_learned": pretext.get("pretext_learned"),
        **{f"video_top1_{name}": round(statistics.mean(top1 for top1, _ in runs), 2)
           for name, runs in videos.items()},
        **{f"video_top1_{name}_runs": [top1 for top1, _ in runs] for name, runs in videos.items()},
        "video_chance": round(test["chance_top1"], 2), "retrieval_top1": retrieval["top1"],
        "retrieval_chance": round(retrieval["chance_top1"], 2),
        "pretext_clips": pretext.get("clips_seen"), "finetune_clips": videos["pretrained"][0][1],
        "wall_s": round(seconds, 1),
    }


def _pair(value, chance) -> str:
    return "-" if value is None else f"{value:.1f} ({chance:.1f})"


def _video(row: dict, name: str) -> str:
    runs = row.get(f"video_top1_{name}_runs", [])
    mean = f"{row[f'video_top1_{name}']:.1f}"
    return mean if len(runs) < 2 else f"{mean} ({', '.join(f'{top1:.1f}' for top1 in runs)})"


def format_table(rows: list[dict]) -> str:
    """A Markdown table, one row per variant and seed."""
    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [row["variant"], str(row["seed"]),
                 _pair(row["speed_acc"], row["speed_chance"]),
                 _pair(row["direction_acc"], row["direction_chance"]),
                 {True: "yes", False: "no"}.get(row["pretext_learned"], "-"),
                 _video(row, "pretrained"), _video(row, "scratch"),
                 f"{row['video_chance']:.1f}",
                 _pair(row["retrieval_top1"], row["retrieval_chance"]),
                 str(row["pretext_clips"]), str(row["finetune_clips"]), f"{row['wall_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _list(text: str, kind=str) -> list:
    return [kind(item) for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="default", type=_list,
                        help="comma-separated names of playspeed.data.synthetic.VARIANTS")
    parser.add_argument("--seeds", default="0", type=lambda text: _list(text, int),
                        help="comma-separated seeds (each: its own dataset and training)")
    parser.add_argument("--finetune-seeds", default=(), type=lambda text: _list(text, int),
                        help="comma-separated seeds each fine-tuning arm runs with; the "
                             "table gives their mean (default: the chain's seed)")
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
                                  seed=seed, scale=scale, finetune_seeds=args.finetune_seeds))
    table = format_table(rows)
    write_json(args.out / "results.json", {"settings": vars(args) | {"out": str(args.out)},
                                           "rows": rows})
    atomic_write_text(args.out / "table.md", table + "\n")
    print(table)
    return rows


if __name__ == "__main__":
    main()
