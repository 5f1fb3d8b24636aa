"""``playspeed prepare``: decode every video once into a frame store, in parallel,
resumably, on one machine or sharded across several.

Each worker decodes one video, resizes its frames and writes its ``.frames`` file under a
temporary name, renaming it into place only when complete; the main process then appends
the video to its journal. A killed run therefore leaves only finished videos visible, and
a rerun skips them (same settings, same bytes: the store ends up identical). Unreadable
videos are reported with their reason and do not stop the others; listed videos that are
not on disk (Kinetics and SSv2 always, UCF-101 and HMDB-51 with ``skip_missing``) are
counted and listed in the report.

Sharding (``shard=(I, N)``, ``prepare --shard I/N``): shard I prepares every N-th video of
the sorted keys, on any machine that mounts the store. It appends to a journal of its own
(``index.shard-I-of-N.jsonl``), never writes ``index.json``, and on finishing writes its
report (``prepare_report.shard-I-of-N.json``, with a digest of the video list), which
marks it done. The shard that finds all N done on the same video list merges: it folds
every journal into ``index.json``, removes the journals and writes ``prepare_report.json``
from the N shard reports; a lock file, created exclusively, lets only one of two shards
finishing together do so. A killed shard resumes when the same command runs again. A
``prepare`` without ``--shard`` folds whatever shards left (and a killed merge's lock):
run it while no shard runs.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
from tqdm import tqdm

from playspeed.data.datasets import (
    SINGLE_SPLIT,
    VideoFolder,
    VideoRecord,
    build_records,
    split_numbers,
)
from playspeed.data.store import (
    FORMATS,
    INDEX,
    JOURNAL,
    SHARD_JOURNALS,
    frames_path,
    load_index,
    shard_journal,
    temporary_files,
    write_frames,
    write_index,
)
from playspeed.data.video import DEFAULT_RESIZE, open_video, output_size, stream_fps, to_rgb
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_text

REPORT = "prepare_report.json"
SHARD_REPORTS = "prepare_report.shard-*-of-*.json"  # glob of shard_report()
MERGE_LOCK = "index.merge.lock"
#: Missing videos named one per line as a run starts (Kinetics misses thousands); the
#: report lists them all.
MISSING_SHOWN = 10


def shard_report(shard: int, num_shards: int) -> str:
    """The report file name of shard ``shard`` (0-based) of ``num_shards``."""
    return f"prepare_report.shard-{shard}-of-{num_shards}.json"


@dataclass
class PrepareReport:
    """What one ``prepare`` run (or shard) did. ``failed``/``warnings`` entries: key, path,
    reason; ``missing``: one line per listed video not on disk."""

    store: Path
    requested: int
    prepared: list[str] = field(default_factory=list)
    already_prepared: int = 0
    failed: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    shard: tuple[int, int] | None = None  # (I, N) for shard I of N
    #: This run wrote the store's index.json and prepare_report.json (a shard: it was the
    #: last of its run to finish).
    merged: bool = False
    pending: list[int] = field(default_factory=list)  # shards unfinished as this one ended

    @property
    def num_warnings(self) -> int:
        return len(self.failed) + len(self.warnings) + len(self.missing)

    @property
    def available(self) -> int:
        """How many of the requested videos the store now holds."""
        return len(self.prepared) + self.already_prepared

    def to_json(self) -> dict:
        return _report_json(self.store, requested=self.requested, prepared=len(self.prepared),
                            already_prepared=self.already_prepared, failed=self.failed,
                            warnings=self.warnings, missing=self.missing)


def _report_json(store: Path, *, requested: int, prepared: int, already_prepared: int,
                 failed: list[dict], warnings: list[dict], missing: list[str], **extra) -> dict:
    """The body of a prepare report, a run's or the merge of its shards'."""
    return {"store": str(store), **extra, "requested": requested, "prepared": prepared,
            "already_prepared": already_prepared, "failed": failed, "warnings": warnings,
            "num_missing": len(missing), "missing": missing}


@dataclass(frozen=True)
class _Job:
    path: Path
    key: str
    dest: Path
    fmt: str
    quality: int
    resize: tuple[int, int] | None
    short_side: int | None


def records_to_prepare(dataset: str, *, videos: str | os.PathLike,
                       splits: str | os.PathLike | None = None,
                       list_file: str | os.PathLike | None = None,
                       skip_missing: bool = False) -> tuple[list[VideoRecord], list[str]]:
    """Every video a store for ``dataset`` needs, and the listed-but-missing ones.

    With ``splits``, the videos named by any of the official split files present there
    (UCF-101, HMDB-51: train, test and unused, all splits; Kinetics: train.csv and the
    validation CSV; SSv2: the train and validation JSONs; test lists without labels are
    not read), each checked to exist; without (UCF-101, HMDB-51, folder), every video found
    under ``videos``.
    """
    if dataset == "folder" or (splits is None and dataset not in SINGLE_SPLIT):
        return list(VideoFolder(videos, list_file=list_file)), []
    records: dict[str, VideoRecord] = {}
    missing: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reported once, below, as the run's warnings
        for split in split_numbers(dataset, splits) or [1]:
            subset = build_records(dataset, videos=videos, splits=splits, split=split,
                                   subset="all", skip_missing=skip_missing)
            for record in subset:
                records.setdefault(record.key, record)
            for message in subset.missing:
                missing.setdefault(message.split(": ", 1)[-1], message)
    return [records[key] for key in sorted(records)], list(missing.values())


def prepare_dataset(dataset: str, *, videos: str | os.PathLike, out: str | os.PathLike,
                    splits: str | os.PathLike | None = None,
                    list_file: str | os.PathLike | None = None, skip_missing: bool = False,
                    **options) -> PrepareReport:
    """``playspeed prepare``: :func:`records_to_prepare` then :func:`prepare_store`
    (``options``: its keyword arguments)."""
    records, missing = records_to_prepare(dataset, videos=videos, splits=splits,
                                          list_file=list_file, skip_missing=skip_missing)
    if not records:
        raise PlayspeedError(f"{videos}: no videos to prepare")
    return prepare_store(records, out, missing=missing, **options)


def prepare_store(records: Sequence[VideoRecord], out: str | os.PathLike, *,
                  fmt: str = "jpeg", quality: int = 90,
                  resize: Sequence[int] | None = DEFAULT_RESIZE, short_side: int | None = None,
                  workers: int = 1, progress: bool = True, missing: Sequence[str] = (),
                  log: Callable[[str], None] | None = None,
                  shard: tuple[int, int] | None = None) -> PrepareReport:
    """Decode ``records`` into the frame store ``out``; returns what was done.

    Frames are resized to ``resize`` (H, W), or to ``short_side`` keeping the aspect, and
    stored as JPEG (``quality``) or raw uint8. Videos already in the store are skipped;
    a store prepared with other settings is refused. ``log`` receives one line per
    problem as it happens; all of them also go to ``out/prepare_report.json``, written when
    the run completes (its presence marks a finished store). ``shard=(I, N)``: only every
    N-th video from the I-th (0-based) of the sorted keys, as shard I of a sharded run
    (see the module's docstring); the report is then the shard's.
    """
    if fmt not in FORMATS:
        raise PlayspeedError(f"store format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not 1 <= quality <= 100:
        raise PlayspeedError(f"JPEG quality must be in 1..100, got {quality}")
    if workers < 1:
        raise PlayspeedError(f"workers must be at least 1, got {workers}")
    if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise PlayspeedError(f"shard must be (I, N) with 0 <= I < N, got {shard!r}")
    root = Path(out)
    resize = None if short_side is not None or resize is None else tuple(int(v) for v in resize)
    settings = {"format": fmt, "quality": quality if fmt == "jpeg" else None,
                "resize": None if resize is None else list(resize), "short_side": short_side}
    done = _open_store(root, settings)
    unique = {record.key: record for record in records}
    keys = sorted(unique)
    if shard is None:
        mine, journal_path = keys, root / JOURNAL
        (root / MERGE_LOCK).unlink(missing_ok=True)  # a killed merge's: no shard runs now
    else:
        mine, journal_path = keys[shard[0]::shard[1]], root / shard_journal(*shard)
        (root / shard_report(*shard)).unlink(missing_ok=True)  # this shard is not done
    # The report exists only once a run has finished, so it marks a complete store.
    (root / REPORT).unlink(missing_ok=True)
    # Temporary files of a killed run: never part of the store, safe to drop (a shard
    # drops only its own: the others may be writing theirs).
    owned = set(mine)
    for stale, key in temporary_files(root).items():
        if shard is None or key in owned:
            stale.unlink(missing_ok=True)

    todo = [unique[key] for key in mine
            if key not in done or not frames_path(root, key).is_file()]
    report = PrepareReport(store=root, requested=len(mine), shard=shard,
                           already_prepared=len(mine) - len(todo), missing=list(missing))
    say = log or (lambda line: None)
    for message in report.missing[:MISSING_SHOWN]:
        say(f"warning: {message}")
    if len(report.missing) > MISSING_SHOWN:
        say(f"warning: ... and {len(report.missing) - MISSING_SHOWN} more listed videos "
            f"missing (all in the report)")
    jobs = [_Job(path=r.path, key=r.key, dest=frames_path(root, r.key), fmt=fmt,
                 quality=quality, resize=resize, short_side=short_side) for r in todo]
    _end_last_line(journal_path)
    try:
        with open(journal_path, "a", encoding="utf-8") as journal, \
                _Results(jobs, workers) as results:
            for result in tqdm(results, total=len(jobs), unit="video", disable=not progress,
                               desc="prepare" if shard is None else
                               f"prepare {shard[0]}/{shard[1]}"):
                key = result.pop("key")
                problem = result.pop("warning", None)
                if "error" in result:
                    report.failed.append({"key": key, "path": str(unique[key].path),
                                          "reason": result["error"]})
                    say(f"warning: {unique[key].path}: {result['error']} (not prepared)")
                    continue
                journal.write(json.dumps({"key": key, **result}, sort_keys=True) + "\n")
                journal.flush()
                done[key] = result
                report.prepared.append(key)
                if problem:
                    report.warnings.append({"key": key, "path": str(unique[key].path),
                                            "reason": problem})
                    say(f"warning: {unique[key].path}: {problem}")
    finally:
        if shard is None:
            # Fold every journal (this run's and any shards') into index.json, also when
            # interrupted, so that the index alone describes the store whenever no run is
            # in progress; the shards' reports are superseded by this run's.
            write_index(root, settings, done)
            for path in [root / JOURNAL, *root.glob(SHARD_JOURNALS), *root.glob(SHARD_REPORTS)]:
                path.unlink(missing_ok=True)
    report.prepared.sort()
    if shard is None:
        atomic_write_text(root / REPORT, json.dumps(report.to_json(), indent=1) + "\n")
        report.merged = True
    else:
        _finish_shard(root, settings, report, videos=_digest(keys))
    return report


def _digest(keys: Sequence[str]) -> str:
    """Names a video list: shards of one run have the same (stale reports, another)."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def _end_last_line(journal: Path) -> None:
    """End a journal's last line if a killed run cut it short, so that the next entry
    starts a line of its own (the cut one is ignored by every reader)."""
    if not journal.is_file() or journal.stat().st_size == 0:
        return
    with open(journal, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            handle.write(b"\n")


def _finish_shard(root: Path, settings: dict, report: PrepareReport, *, videos: str) -> None:
    """Mark the shard done (its report); the last shard of the run merges the store."""
    index, count = report.shard
    body = {**report.to_json(), "shard": [index, count], "videos": videos}
    atomic_write_text(root / shard_report(index, count), json.dumps(body, indent=1) + "\n")
    reports = _shard_reports(root, count, videos)
    report.pending = [i for i, found in enumerate(reports) if found is None]
    if not report.pending:
        report.merged = _merge_shards(root, settings, count, videos)


def _shard_reports(root: Path, count: int, videos: str) -> list[dict | None]:
    """Each shard's report, None where the shard has not finished on the list ``videos``."""
    reports = []
    for index in range(count):
        try:
            body = json.loads((root / shard_report(index, count)).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            body = None
        reports.append(body if body and body.get("videos") == videos else None)
    return reports


def _merge_shards(root: Path, settings: dict, count: int, videos: str) -> bool:
    """Fold the journals into index.json and the shard reports into the store's report;
    False where another shard holds the merge lock (it merges)."""
    try:
        lock = os.open(root / MERGE_LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    try:
        # Checked again under the lock: one that merged before us removed nothing we
        # need, but a shard rerun meanwhile removed its report and is not done.
        reports = _shard_reports(root, count, videos)
        if any(found is None for found in reports):
            return False
        _, stored = load_index(root)
        write_index(root, settings, stored)
        for journal in root.glob(SHARD_JOURNALS):
            journal.unlink(missing_ok=True)
        missing = list(dict.fromkeys(line for found in reports for line in found["missing"]))
        merged = _report_json(
            root, shards=count, requested=sum(found["requested"] for found in reports),
            prepared=sum(found["prepared"] for found in reports),
            already_prepared=sum(found["already_prepared"] for found in reports),
            failed=sorted((entry for found in reports for entry in found["failed"]),
                          key=lambda entry: entry["key"]),
            warnings=sorted((entry for found in reports for entry in found["warnings"]),
                            key=lambda entry: entry["key"]),
            missing=missing)
        atomic_write_text(root / REPORT, json.dumps(merged, indent=1) + "\n")
        return True
    finally:
        os.close(lock)
        (root / MERGE_LOCK).unlink(missing_ok=True)


def _open_store(root: Path, settings: dict) -> dict[str, dict]:
    """The videos already in the store at ``root`` (journals included), creating it if need
    be; shards starting together on a new store all find the one store."""
    if not (root / INDEX).is_file():
        root.mkdir(parents=True, exist_ok=True)
        # A shard elsewhere may be creating it this moment: its temporary index and the
        # index itself are no strangers.
        strangers = [p for p in root.iterdir() if not p.name.startswith(f".{INDEX}.")]
        if strangers and not (root / INDEX).is_file():
            raise PlayspeedError(f"{root}: exists and is not a frame store; choose an empty "
                                 "or new --out folder")
        write_index(root, settings, {}, create=True)
    existing, done = load_index(root)
    theirs = {k: existing.get(k) for k in settings}
    if theirs != settings:
        raise PlayspeedError(
            f"{root}: store was prepared with {_describe(theirs)}, this run asks for "
            f"{_describe(settings)}; use another --out or the same settings")
    return done


def _describe(settings: dict) -> str:
    size = (f"short side {settings['short_side']}" if settings.get("short_side")
            else "size {}x{}".format(*(settings.get("resize") or ("?", "?"))))
    quality = f" quality {settings['quality']}" if settings.get("format") == "jpeg" else ""
    return f"format {settings.get('format')}{quality}, {size}"


class _Results:
    """Results of ``_prepare_one`` over ``jobs``, in this process or a spawn pool."""

    def __init__(self, jobs: list[_Job], workers: int) -> None:
        self.jobs, self.workers, self.pool = jobs, min(workers, max(1, len(jobs))), None

    def __enter__(self):
        if self.workers == 1:
            return map(_prepare_one, self.jobs)
        # spawn: a forked child could inherit locked OpenMP/torch thread state.
        self.pool = multiprocessing.get_context("spawn").Pool(self.workers)
        return self.pool.imap_unordered(_prepare_one, self.jobs)

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _prepare_one(job: _Job) -> dict:
    """Decode, resize and store one video; a dict of its index entry or of its error."""
    try:
        with open_video(job.path) as (container, stream):
            size = output_size(stream.height, stream.width, resize=job.resize,
                               short_side=job.short_side)
            declared, fps = stream.frames, stream_fps(stream)
            frames = (to_rgb(frame, size) for frame in container.decode(stream))
            count, height, width = write_frames(job.dest, frames, fmt=job.fmt,
                                                quality=job.quality)
    except PlayspeedError as err:
        return {"key": job.key, "error": str(err).removeprefix(f"{job.path}: ")}
    except av.FFmpegError as err:
        return {"key": job.key, "error": f"cannot decode ({err.strerror or err})"}
    except ValueError as err:  # write_frames: nothing decoded, or the frame size changed
        reason = "no frames decoded (empty video)" if str(err) == "no frames" else str(err)
        return {"key": job.key, "error": reason}
    except OSError as err:
        return {"key": job.key, "error": f"cannot read or write ({err})"}
    entry = {"key": job.key, "num_frames": count, "fps": round(fps, 6), "height": height,
             "width": width}
    if declared > 1 and count < declared - 1:
        entry["warning"] = (f"decoded {count} of the {declared} frames the file declares "
                            "(truncated?); prepared what was readable")
    return entry
