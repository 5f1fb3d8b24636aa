"""The ``playspeed`` command: one subcommand per stage, each a thin call into the library.

Every subcommand exits 0 on success; bad input raises :class:`PlayspeedError`, printed as
one ``error: ...`` line with exit status 2 (``--debug`` shows the traceback instead). A
training command stopped by SIGTERM, SIGINT or SIGUSR1 saves its step, prints one line with
the command that resumes it, and exits with ``128 + signal`` (:mod:`playspeed.signals`).
Heavy imports (torch, PyAV, Lightning) happen inside the handlers so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from playspeed import __version__
from playspeed.config import DATASETS, INPUT_MODES
from playspeed.errors import PlayspeedError
from playspeed.objectives import OBJECTIVES
from playspeed.rundir import is_rank_zero
from playspeed.signals import Preempted


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="dotted config overrides applied on top of the YAML, e.g. trainer.max_epochs=5",
    )


def _add_ckpt(parser: argparse.ArgumentParser, *, what: str = "checkpoint") -> None:
    parser.add_argument("--ckpt", required=True, type=Path, help=f"{what} (.ckpt)")


def _build_parser(handlers: dict[str, Callable[[argparse.Namespace], int | None]]):
    parser = argparse.ArgumentParser(
        prog="playspeed",
        description="Self-supervised video representation learning by predicting playback speed.",
    )
    parser.add_argument("--version", action="version", version=f"playspeed {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks on errors and every notice of the libraries used")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handlers[name])
        return p

    p = command("demo", "the whole method end to end on the embedded synthetic dataset")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--quick", action="store_true", help="small settings: under 10 min on 2 CPUs")
    p.add_argument("--seed", type=int, default=0)

    p = command("compare", "pretrain each pretext objective at the same budget in clips seen, "
                           "fine-tune each the same way, write one table and chart")
    p.add_argument("--objectives", default=",".join(OBJECTIVES),
                   help=f"comma-separated, from {', '.join(OBJECTIVES)} (classify with TGN and "
                        "BN and scratch are always included)")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="run directory")
    p.add_argument("--quick", action="store_true", help="the demo's quick scale (2 CPU cores)")
    p.add_argument("--seed", type=int, nargs="+", default=[0], metavar="S",
                   help="one seed, or several: each runs in OUT/seed<S>, OUT/compare.md gives "
                        "mean ± std")
    p.add_argument("--variant", default="default",
                   help="the synthetic set: a named member of the family (see synth --variant)")
    _add_overrides(p)

    p = command("synth", "write a synthetic action dataset in the UCF-101 layout")
    p.add_argument("out", type=Path, metavar="DIR")
    p.add_argument("--classes", type=int, default=None, help="number of classes (default: all)")
    p.add_argument("--videos-per-class", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", default="default",
                   help="a named member of the family (default, original-tempo, wide-tempo, "
                        "no-reversal, mirror, long-static, field, crowd, handheld); the options "
                        "below change it")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="frame size of the written videos")
    p.add_argument("--frames", type=int, nargs="+", default=None, metavar="N",
                   help="frames per video: N, or LOW HIGH to draw each video's length")
    p.add_argument("--tempo", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="per-video tempo range (log-uniform), e.g. 0.6 1.7")
    p.add_argument("--class-set", default=None,
                   help="default, no-reversal-pairs, mirror-pairs, or comma-separated classes")
    p.add_argument("--static", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="per-video share of frames in which the objects rest, e.g. 0 0.3")
    p.add_argument("--pan", type=float, default=None,
                   help="bound of the camera sway amplitude, in frame heights (default 0.05)")
    p.add_argument("--noise", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="range of the sensor noise's standard deviation (grey levels)")
    p.add_argument("--distractors", type=int, default=None, metavar="N",
                   help="shapes wandering on their own paths and tempos, whatever the class "
                        "(crowd: 10)")
    p.add_argument("--zoom", type=float, default=None,
                   help="bound of the camera's zoom in and out, as a log scale (handheld: 0.3, "
                        "up to 1.35x)")
    p.add_argument("--shake", type=float, default=None,
                   help="bound of the camera's jitter, in frame heights (handheld: 0.02)")
    p.add_argument("--flow", type=float, default=None,
                   help="speed bound of a background layer flowing on its own, in frame heights "
                        "per frame (handheld: 0.02)")

    p = command("prepare", "decode videos once into a fast frame store")
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--videos", type=Path, required=True,
                   help="folder of class folders (kinetics: holding train/ and val/ or "
                        "validate/; ssv2: of the <id>.webm files)")
    p.add_argument("--splits", type=Path, default=None,
                   help="folder with the official split files (ucf101, hmdb51) or annotation "
                        "files (kinetics: train.csv, validate.csv or val.csv; ssv2: labels, "
                        "train and validation JSONs)")
    p.add_argument("--list-file", type=Path, default=None, help="folder: a list of videos")
    p.add_argument("--out", type=Path, required=True, help="store directory")
    p.add_argument("--workers", type=int, default=1)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--resize", type=int, nargs=2, default=None, metavar=("H", "W"),
                      help="frame size in the store (default: 128 171); the config's "
                           "clip.resize spares the loader resizing every clip")
    size.add_argument("--short-side", action="store_true",
                      help="resize the short side to 128 keeping aspect (default: 128x171)")
    p.add_argument("--format", choices=("jpeg", "raw"), default="jpeg",
                   help="jpeg: ~10x smaller; raw: uncompressed uint8, fastest reads")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip videos named in the split files but absent (counted as warnings; "
                        "kinetics, ssv2: always)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="prepare every N-th video from the I-th (0-based) into the shared "
                        "--out, e.g. 0/4 to 3/4 on four machines; the last to finish merges "
                        "the store's index (rerun a killed shard to resume)")

    p = command("pretrain", "pretext training: predict playback speed and direction")
    p.add_argument("--config", required=True, help="YAML file, or a built-in name")
    p.add_argument("--out", type=Path, default=None, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    _add_overrides(p)

    p = command("finetune", "fine-tune a backbone for action recognition")
    p.add_argument("--config", required=True, help="YAML file, or a built-in name")
    p.add_argument("--init", type=Path, default=None, help="pretrain checkpoint (default: scratch)")
    p.add_argument("--out", type=Path, default=None, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    _add_overrides(p)

    p = command("test", "clip and video accuracy on the test split")
    _add_ckpt(p, what="fine-tuned checkpoint")
    p.add_argument("--clips", type=int, default=None,
                   help="clips per video for video accuracy (default: the checkpoint's "
                        "clip.test_clips, or as overridden)")
    p.add_argument("--out", type=Path, default=None)
    _add_overrides(p)

    p = command("retrieve", "nearest-neighbour retrieval: test videos query the train gallery")
    _add_ckpt(p)
    p.add_argument("--topk", default="1,5,10,20,50")
    p.add_argument("--out", type=Path, default=None)
    _add_overrides(p)

    p = command("extract", "per-video features for any videos")
    _add_ckpt(p)
    p.add_argument("--videos", type=Path, required=True, help="a folder, or a file listing videos")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    _add_overrides(p)

    p = command("probe", "linear-probe and k-NN accuracy on frozen features")
    _add_ckpt(p)
    p.add_argument("--out", type=Path, default=None)
    _add_overrides(p)

    p = command("show", "draw one pretext sample as the network sees it: a row per clip, "
                        "labelled by signed speed")
    p.add_argument("video", type=Path, metavar="VIDEO")
    p.add_argument("--out", type=Path, default=Path("clips.png"), help="PNG to write")
    settings = p.add_mutually_exclusive_group()
    settings.add_argument("--config", default=None,
                          help="YAML file or built-in name whose sampling, crop and input mode "
                               "to draw (default: the built-in defaults: 16-frame RGB clips)")
    settings.add_argument("--ckpt", type=Path, default=None,
                          help="draw what this checkpoint's model was trained on")
    p.add_argument("--input", choices=INPUT_MODES, default=None,
                   help="what to draw: the frames, or the differences the backbone sees "
                        "(default: the config's model.input_mode)")
    p.add_argument("--frames", type=int, default=8, help="frames drawn per clip")
    p.add_argument("--seed", type=int, default=0, help="a different seed draws another sample")
    _add_overrides(p)

    p = command("speed", "predict playback speed and direction along a video")
    p.add_argument("video", type=Path, metavar="VIDEO")
    _add_ckpt(p, what="pretrain checkpoint")
    p.add_argument("--out", type=Path, default=None, help="plot (.png)")
    p.add_argument("--stride", type=int, default=None,
                   help="frames between window starts (default: half a window)")
    p.add_argument("--min-windows", type=int, default=2,
                   help="consecutive unusual windows needed to flag a segment")

    p = command("export", "write the backbone in a format other tools load")
    _add_ckpt(p)
    p.add_argument("--format", required=True,
                   choices=("safetensors", "torchvision", "torchscript", "onnx"),
                   help="safetensors: weights + config header (playspeed.load_backbone); "
                        "torchvision: r3d_18 state dict (BN only); torchscript, onnx: any backbone")
    p.add_argument("--out", type=Path, required=True, help="file to write")
    return parser


# Handlers. Each imports what it needs and calls one library entry point.

# --- data commands (synth, prepare) ---


def _run_synth(args: argparse.Namespace) -> int:
    from playspeed.data.synthetic import write_dataset

    if args.frames is not None and len(args.frames) > 2:
        raise PlayspeedError(f"--frames: expected N or LOW HIGH, got {len(args.frames)} values")
    class_set = args.class_set
    if class_set is not None and "," in class_set:
        class_set = tuple(name.strip() for name in class_set.split(",") if name.strip())
    given = {"num_classes": args.classes, "videos_per_class": args.videos_per_class}
    summary = write_dataset(
        args.out, seed=args.seed, progress=True, variant=args.variant,
        size=args.size, frames=args.frames and (args.frames * 2)[:2], tempo=args.tempo,
        class_set=class_set, static=args.static, pan=args.pan, noise=args.noise,
        distractors=args.distractors, zoom=args.zoom, shake=args.shake, flow=args.flow,
        **{k: v for k, v in given.items() if v is not None})
    width, height = summary["size"]
    frames = summary["frames"]
    frames = f"{frames[0]}-{frames[1]}" if isinstance(frames, list) else frames
    print(f"wrote {summary['videos']} videos ({len(summary['classes'])} classes, "
          f"{frames} frames of {width}x{height}, variant {summary['variant']}) to {args.out} "
          f"in {summary['seconds']:.0f}s")
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from playspeed.data.prepare import REPORT, prepare_dataset, shard_report

    shard = _parse_shard(args.shard) if args.shard else None
    report = prepare_dataset(
        args.dataset, videos=args.videos, out=args.out, splits=args.splits,
        list_file=args.list_file, skip_missing=args.skip_missing, fmt=args.format,
        quality=args.quality, short_side=128 if args.short_side else None,
        **({"resize": tuple(args.resize)} if args.resize else {}),
        workers=args.workers, shard=shard, log=lambda line: tqdm.write(line, file=sys.stderr))
    written = args.out / (REPORT if shard is None else shard_report(*shard))
    if report.requested and report.available == 0:
        raise PlayspeedError(f"{args.out}: no video could be prepared "
                             f"({len(report.failed)} unreadable, see {written})")
    line = (f"{args.out}{'' if shard is None else ' shard {}/{}'.format(*shard)}: "
            f"{len(report.prepared)} videos prepared, {report.already_prepared} already there; "
            f"{report.num_warnings} warnings")
    if report.missing:
        line += f", {len(report.missing)} of them listed videos missing"
    if report.num_warnings:
        line += f" (see {written})"
    if shard is not None:
        if report.merged:
            line += f"; all {shard[1]} shards done, index merged ({args.out / REPORT})"
        elif report.pending:
            line += (f"; waiting for shard {', '.join(map(str, report.pending))}: the last "
                     "to finish merges the index")
        else:
            line += ("; another shard is merging the index (if none runs, 'prepare' without "
                     "--shard merges it)")
    print(line)
    return 0


def _parse_shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if index.isdigit() and count.isdigit() and int(index) < int(count):
        return int(index), int(count)
    raise PlayspeedError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")

# --- sampling commands (show) ---


def _run_show(args: argparse.Namespace) -> int:
    from playspeed.config import load_config, override_config
    from playspeed.preview import show_video
    from playspeed.tasks.checkpoints import checkpoint_config, read_checkpoint

    if args.ckpt is not None:
        stored = checkpoint_config(read_checkpoint(args.ckpt), args.ckpt)
        config = override_config(stored, args.overrides, source=str(args.ckpt))
    else:
        config = load_config(args.config, args.overrides)
    out = show_video(args.video, out=args.out, config=config, input_mode=args.input,
                     frames_per_row=args.frames, seed=args.seed)
    print(f"wrote {out}")
    return 0


# --- training commands (pretrain, finetune, test) ---


def _run_dir(out: Path | None, config_name: str | None, stage: str) -> Path:
    """``--out``, or ``runs/<stage>/<config name>``."""
    return out or Path("runs") / stage / Path(config_name or stage).stem


def _run_pretrain(args: argparse.Namespace) -> int:
    from playspeed.config import load_config
    from playspeed.tasks.pretext import pretrain

    config = load_config(args.config, args.overrides)
    out = _run_dir(args.out, args.config, "pretrain")
    metrics = pretrain(config, out, resume=args.resume)
    if not is_rank_zero():  # the other processes of a distributed run say nothing
        return 0
    where = f"after {metrics['clips_seen']} clips; run in {out}"
    if not metrics["validated"]:
        print(f"not validated: {metrics['not_validated']}; {where}")
        return 0
    print(f"pretext accuracy {metrics['pretext_val_acc']:.1f}% "
          f"(chance {metrics['pretext_val_chance']:.1f}%) on {metrics['num_videos']} held-out "
          f"videos{_measured_at(metrics)} {where}")
    return 0


def _measured_at(metrics: dict) -> str:
    """`` (measured at step S of N)`` when the last validation came before the last step."""
    step, steps = metrics["validated_at_step"], metrics["protocol"]["steps"]
    return "" if step == steps else f" (measured at step {step} of {steps})"


def _run_finetune(args: argparse.Namespace) -> int:
    from playspeed.config import load_config
    from playspeed.tasks.finetune import finetune

    config = load_config(args.config, args.overrides)
    out = _run_dir(args.out, args.config, "finetune")
    metrics = finetune(config, out, init=args.init, resume=args.resume)
    if not is_rank_zero():
        return 0
    if not metrics["validated"]:
        print(f"not validated: {metrics['not_validated']}; run in {out}")
        return 0
    print(f"validation clip accuracy {metrics['val_clip_top1']:.1f}% "
          f"(chance {metrics['val_chance']:.1f}%) on {metrics['num_videos']} held-out "
          f"videos{_measured_at(metrics)}; run in {out}")
    return 0


def _run_test(args: argparse.Namespace) -> int:
    from playspeed.tasks.evaluation import evaluate

    out = args.out or args.ckpt.parent.parent / "test"
    metrics = evaluate(args.ckpt, out=out, num_clips=args.clips, overrides=args.overrides)
    print(f"clip top-1 {metrics['clip_top1']:.1f}%  video top-1 {metrics['video_top1']:.1f}%  "
          f"(chance {metrics['chance_top1']:.1f}%, {metrics['num_videos']} videos); "
          f"written to {out}")
    return 0

# --- evaluation commands (retrieve, extract, probe, speed) ---


def _run_retrieve(args: argparse.Namespace) -> int:
    from playspeed.tasks.retrieval import retrieve

    try:
        topk = sorted({int(k) for k in args.topk.split(",")})
    except ValueError:
        raise PlayspeedError(f"--topk {args.topk!r}: expected integers like 1,5,10") from None
    if not topk or topk[0] < 1:
        raise PlayspeedError(f"--topk {args.topk!r}: every k must be at least 1")
    out = args.out or args.ckpt.parent.parent / "retrieval"
    metrics = retrieve(args.ckpt, out=out, topk=topk, overrides=args.overrides)
    print("  ".join(f"top-{k} {metrics[f'top{k}']:.1f}% (chance {metrics[f'chance_top{k}']:.1f}%)"
                    for k in topk)
          + f"  ({metrics['num_videos']} queries); written to {out}")
    return 0


def _run_extract(args: argparse.Namespace) -> int:
    from playspeed.tasks.features import extract

    summary = extract(args.ckpt, videos=args.videos, out=args.out, overrides=args.overrides,
                      log=lambda line: print(line, file=sys.stderr))
    print(f"features of {summary['num_videos']} videos written to {args.out}"
          + (f"; {summary['num_failed']} could not be read (warnings above)"
             if summary["num_failed"] else ""))
    return 0


def _run_probe(args: argparse.Namespace) -> int:
    from playspeed.tasks.probe import probe

    out = args.out or args.ckpt.parent.parent / "probe"
    metrics = probe(args.ckpt, out=out, overrides=args.overrides)
    print(f"linear probe {metrics['linear_top1']:.1f}%  k-NN {metrics['knn_top1']:.1f}%  "
          f"(chance {metrics['chance_top1']:.1f}%, {metrics['num_videos']} test videos); "
          f"written to {out}")
    return 0


def _run_speed(args: argparse.Namespace) -> int:
    from playspeed.tasks.speed import detect_speed

    out = args.out or args.video.with_name(args.video.stem + "_speed.png")
    result = detect_speed(args.ckpt, args.video, out=out, stride=args.stride,
                          min_windows=args.min_windows)
    fps = result["fps"]
    print(f"{'time':>13}  {'likeliest':>9}  {'prob':>4}  {'speed':>6}  P(reversed)")
    for window in result["windows"]:
        print(f"{window.start / fps:6.2f}s frame {window.start:>5}  {window.signed_speed:>+8d}x"
              f"  {window.confidence:.2f}  {2 ** window.log2_speed:5.2f}x  "
              f"{window.p_reversed:.2f}")
    typical = result["typical"]
    print(f"typical window: {typical.speed:.2f}x, P(reversed) {typical.p_reversed:.2f}")
    for segment in result["segments"]:
        reading = (f"{segment.relative_speed:.1f}x the typical speed" if segment.kind == "sped up"
                   else f"P(reversed) {segment.p_reversed:.2f}")
        print(f"flagged: {segment.kind} ({segment.signed_speed:+d}x, {reading}) from "
              f"{segment.first_frame / fps:.2f}s to {(segment.last_frame + 1) / fps:.2f}s "
              f"(frames {segment.first_frame}-{segment.last_frame})")
    if not result["segments"]:
        print("no sped-up or reversed segment found")
    print(f"plot written to {out}")
    return 0



def _run_export(args: argparse.Namespace) -> int:
    from playspeed.export import export_backbone

    spec = export_backbone(args.ckpt, fmt=args.format, out=args.out)
    build, clip = spec.build, spec.input
    print(f"wrote {args.out} ({args.format}): {build['name']} with {build['norm']}, "
          f"width {build['width']}; input B x 3 x T x H x W (trained on "
          f"{clip['clip_len']}x{clip['size']}x{clip['size']}, mean {clip['mean']}, "
          f"std {clip['std']}) -> features B x {spec.feature_dim}")
    return 0

# --- demo ---


def _run_demo(args: argparse.Namespace) -> int:
    from playspeed.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)
    print(f"report: {args.out / 'report.md'}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from playspeed.compare import run_compare_seeds

    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    run_compare_seeds(args.out, seeds=args.seed, objectives=objectives, quick=args.quick,
                      variant=args.variant, overrides=args.overrides)
    print(f"report: {args.out / 'compare.md'}")
    return 0


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``key=value`` overrides may come anywhere after the command, also
    between or after its options (argparse alone takes positionals in one run only)."""
    args, rest = parser.parse_known_args(argv)
    overrides = [item for item in rest if "=" in item and not item.startswith("-")]
    unknown = [item for item in rest if item not in overrides]
    if unknown or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    return args


COMMANDS = ("demo", "compare", "synth", "prepare", "pretrain", "finetune", "test", "retrieve",
            "extract", "probe", "show", "speed", "export")


def _resume_command(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """The command that continues a stopped run: the same one, with ``--resume`` for
    pretrain and finetune (demo and compare resume their cached stages by themselves)."""
    words = list(argv)
    if args.command in ("pretrain", "finetune") and "--resume" not in words:
        words.insert(words.index(args.command) + 1, "--resume")
    return shlex.join(["playspeed", *words])


def main(argv: Sequence[str] | None = None) -> int:
    handlers = {name: globals()[f"_run_{name}"] for name in COMMANDS}
    parser = _build_parser(handlers)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(parser, argv)
    if not args.debug:
        from playspeed.console import quiet_dependencies

        quiet_dependencies()
    try:
        return int(args.handler(args) or 0)
    except PlayspeedError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Preempted as stop:
        if stop.is_global_zero:  # the other ranks of a distributed run stop alike, silently
            print(f"{stop}; resume with: {_resume_command(args, argv)}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
