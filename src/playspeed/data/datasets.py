"""Video records from the official split and annotation files of UCF-101, HMDB-51,
Kinetics-400/600/700 and Something-Something v2, or from a folder tree.

A dataset is a sequence of :class:`VideoRecord` with 0-based integer labels and a
``classes`` list; nothing downstream parses file names. Class and file names are matched
against the disk case-insensitively (the real UCF-101 has ``HandStandPushups`` folders but
``HandstandPushups`` in classInd.txt); a record's ``key`` is its path as found on disk.
Bad split or annotation files raise :class:`PlayspeedError` naming the file and line (or
entry). Kinetics and SSv2 are downloaded video by video, and several percent of Kinetics
is gone from YouTube: their listed-but-absent videos are always skipped and listed in
``missing``, never an error.
"""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from playspeed.config import DATASETS
from playspeed.data.records import VideoRecord
from playspeed.data.video import VIDEO_EXTENSIONS
from playspeed.errors import PlayspeedError

SUBSETS = ("train", "test", "all")
SPLITS = (1, 2, 3)
_UCF101_GROUP = re.compile(r"_g(\d+)_c\d+$", re.IGNORECASE)  # v_<Class>_g<GG>_c<CC>


class VideoDataset(Sequence[VideoRecord]):
    """An immutable list of records with the class names their labels index."""

    def __init__(self, records: Sequence[VideoRecord], classes: Sequence[str],
                 missing: Sequence[str] = ()) -> None:
        self._records = tuple(records)
        self.classes = list(classes)
        #: ``"file:line: ..."`` for every listed video skipped because it is not on disk.
        self.missing = list(missing)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):
        return self._records[index]

    def __iter__(self) -> Iterator[VideoRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} videos, {len(self.classes)} classes)"


class _Disk:
    """Case-insensitive lookup of ``<root>/<class>/<file>``, listing each folder once."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise PlayspeedError(f"{root}: videos folder not found")
        self.root = root
        self._dirs = {p.name.lower(): p.name for p in root.iterdir() if p.is_dir()}
        self._files: dict[str, dict[str, str]] = {}

    def find(self, folder: str, name: str) -> str | None:
        """The on-disk key ``Folder/file`` for ``folder/name``, or None if absent."""
        actual = self._dirs.get(folder.lower())
        if actual is None:
            return None
        files = self._files.get(actual)
        if files is None:
            files = self._files[actual] = {
                p.name.lower(): p.name for p in (self.root / actual).iterdir() if p.is_file()
            }
        found = files.get(name.lower())
        return None if found is None else f"{actual}/{found}"


def _check_choice(split: int, subset: str) -> None:
    if split not in SPLITS:
        raise PlayspeedError(f"split must be 1, 2 or 3, got {split!r}")
    _check_subset(subset)


def _check_subset(subset: str) -> None:
    if subset not in SUBSETS:
        raise PlayspeedError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")


def _annotated_roots(videos: str | os.PathLike, splits: str | os.PathLike, subset: str
                     ) -> tuple[Path, Path]:
    """The videos folder and the annotation folder of a dataset read from annotation files,
    checked: the subset is known and the videos folder exists."""
    _check_subset(subset)
    videos, splits = Path(videos), Path(splits)
    if not videos.is_dir():
        raise PlayspeedError(f"{videos}: videos folder not found")
    return videos, splits


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) of every non-blank line (CRLF or LF)."""
    if not path.is_file():
        raise PlayspeedError(f"{path}: split file not found")
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                yield number, fields


def _listed_video(disk: _Disk, folder: str, name: str, *, where: str, videos: Path,
                  skip_missing: bool, missing: list[str]) -> str | None:
    """The key of a video a split line names; a missing one raises, or with
    ``skip_missing`` is noted in ``missing`` (returns None)."""
    key = disk.find(folder, name)
    if key is None:
        message = f"{where}: video '{folder}/{name}' not found under {videos}"
        if not skip_missing:
            raise PlayspeedError(message)
        missing.append(message)
    return key


def _warn_missing(missing: list[str], videos: Path) -> None:
    if missing:
        warnings.warn(
            f"{len(missing)} listed videos are missing under {videos} and were skipped "
            f"(first: {missing[0]})", stacklevel=3,
        )


class UCF101(VideoDataset):
    """UCF-101 split ``split`` (1-3), ``subset`` "train", "test" or "all" (both).

    ``videos`` holds ``<Class>/v_<Class>_gGG_cCC.avi``; ``splits`` holds the official
    ``classInd.txt``, ``trainlist0N.txt`` ("Class/file.avi label", 1-based) and
    ``testlist0N.txt`` ("Class/file.avi"; the label comes from the class folder).
    """

    def __init__(self, videos: str | os.PathLike, splits: str | os.PathLike, *, split: int = 1,
                 subset: str = "train", skip_missing: bool = False) -> None:
        _check_choice(split, subset)
        videos, splits = Path(videos), Path(splits)
        classes = self._read_classes(splits / "classInd.txt")
        lookup = {name.lower(): label for label, name in enumerate(classes)}
        disk = _Disk(videos)
        records, missing = [], []
        lists = {"train": [f"trainlist0{split}.txt"], "test": [f"testlist0{split}.txt"],
                 "all": [f"trainlist0{split}.txt", f"testlist0{split}.txt"]}[subset]
        for list_name in lists:
            list_file = splits / list_name
            for number, fields in _lines(list_file):
                where = f"{list_file}:{number}"
                if len(fields) > 2 or fields[0].count("/") != 1:
                    raise PlayspeedError(
                        f"{where}: malformed line {' '.join(fields)!r} "
                        "(expected 'Class/video.avi' or 'Class/video.avi <label>')")
                folder, name = fields[0].split("/")
                label = lookup.get(folder.lower())
                if label is None:
                    raise PlayspeedError(f"{where}: unknown class {folder!r} "
                                         f"(not in {splits / 'classInd.txt'})")
                if len(fields) == 2 and fields[1] != str(label + 1):
                    raise PlayspeedError(
                        f"{where}: label {fields[1]!r} does not match class {folder!r} "
                        f"(index {label + 1} in classInd.txt)")
                key = _listed_video(disk, folder, name, where=where, videos=videos,
                                    skip_missing=skip_missing, missing=missing)
                if key is None:
                    continue
                match = _UCF101_GROUP.search(Path(key).stem)
                records.append(VideoRecord(path=videos / key, label=label, key=key,
                                           group=str(int(match.group(1))) if match else None))
        _warn_missing(missing, videos)
        super().__init__(records, classes, missing)

    @staticmethod
    def _read_classes(path: Path) -> list[str]:
        names: dict[int, str] = {}
        seen: set[str] = set()
        for number, fields in _lines(path):
            if len(fields) != 2 or not fields[0].isdigit():
                raise PlayspeedError(f"{path}:{number}: malformed line {' '.join(fields)!r} "
                                     "(expected '<index> <ClassName>')")
            index = int(fields[0])
            if index in names or fields[1].lower() in seen:
                raise PlayspeedError(f"{path}:{number}: class {fields[0]} {fields[1]} "
                                     "listed twice")
            names[index] = fields[1]
            seen.add(fields[1].lower())
        if sorted(names) != list(range(1, len(names) + 1)):
            raise PlayspeedError(f"{path}: class indices must run 1..{len(names)} without gaps")
        return [names[i] for i in range(1, len(names) + 1)]


class HMDB51(VideoDataset):
    """HMDB-51 split ``split`` (1-3), ``subset`` "train", "test" or "all".

    ``splits`` holds ``<class>_test_split<N>.txt`` files of "<video>.avi <id>" lines
    (1 train, 2 test, 0 unused in that split; "all" takes every listed video). Classes
    are the split files' class names in sorted order; labels index that list.
    """

    _IDS = {"train": {"1"}, "test": {"2"}, "all": {"0", "1", "2"}}

    def __init__(self, videos: str | os.PathLike, splits: str | os.PathLike, *, split: int = 1,
                 subset: str = "train", skip_missing: bool = False) -> None:
        _check_choice(split, subset)
        videos, splits = Path(videos), Path(splits)
        if not splits.is_dir():
            raise PlayspeedError(f"{splits}: split folder not found (expected the official "
                                 "testTrainMulti_7030_splits)")
        suffix = f"_test_split{split}.txt"
        files = {p.name[: -len(suffix)]: p for p in splits.iterdir() if p.name.endswith(suffix)}
        if not files:
            raise PlayspeedError(f"{splits}: no split files '<class>{suffix}'")
        classes = sorted(files, key=str.lower)
        disk = _Disk(videos)
        records, missing = [], []
        for label, name in enumerate(classes):
            for number, fields in _lines(files[name]):
                where = f"{files[name]}:{number}"
                if len(fields) != 2 or fields[1] not in {"0", "1", "2"}:
                    raise PlayspeedError(f"{where}: malformed line {' '.join(fields)!r} "
                                         "(expected '<video>.avi <0|1|2>')")
                if fields[1] not in self._IDS[subset]:
                    continue
                key = _listed_video(disk, name, fields[0], where=where, videos=videos,
                                    skip_missing=skip_missing, missing=missing)
                if key is None:
                    continue
                records.append(VideoRecord(path=videos / key, label=label, key=key))
        _warn_missing(missing, videos)
        super().__init__(records, classes, missing)


class VideoFolder(VideoDataset):
    """Videos under ``root/<class>/...`` (labelled by class folder, classes sorted) and
    directly under ``root`` (label -1).

    A scan takes files with a video ending (:data:`VIDEO_EXTENSIONS`); ``list_file`` instead
    names the videos, one path per line, relative to ``root`` (or absolute, inside it).
    """

    def __init__(self, root: str | os.PathLike, *, list_file: str | os.PathLike | None = None
                 ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise PlayspeedError(f"{root}: videos folder not found")
        classes = sorted((p.name for p in root.iterdir()
                          if p.is_dir() and not p.name.startswith(".")), key=str.lower)
        if list_file is None:
            keys = sorted(
                p.relative_to(root).as_posix() for p in root.rglob("*")
                if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
        else:
            keys = list(self._read_list(Path(list_file), root))
        lookup = {name: label for label, name in enumerate(classes)}
        records = [
            VideoRecord(path=root / key, key=key,
                        label=lookup.get(key.split("/")[0], -1) if "/" in key else -1)
            for key in keys
        ]
        super().__init__(records, classes)

    @staticmethod
    def _read_list(list_file: Path, root: Path) -> Iterator[str]:
        if not list_file.is_file():
            raise PlayspeedError(f"{list_file}: list file not found")
        with open(list_file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                entry = line.strip()
                if not entry:
                    continue
                path = Path(entry) if Path(entry).is_absolute() else root / entry
                if not path.is_file():
                    raise PlayspeedError(f"{list_file}:{number}: video {entry!r} not found")
                try:
                    yield path.resolve().relative_to(root.resolve()).as_posix()
                except ValueError:
                    raise PlayspeedError(
                        f"{list_file}:{number}: video {entry!r} is outside {root}") from None


def _video_stem(name: str) -> str | None:
    """``name`` without its video ending; None for hidden files and other endings."""
    suffix = Path(name).suffix
    if name.startswith(".") or suffix.lower() not in VIDEO_EXTENSIONS:
        return None
    return name[: -len(suffix)]


def _videos_by_stem(folder: Path) -> dict[str, list[str]]:
    """Every video directly in ``folder`` or one folder down, by file name without its
    ending: stem -> paths relative to ``folder`` (sorted, flat ones first). One listing per
    folder: 240k Kinetics clips take a second, where a lookup per clip would take minutes
    on a network filesystem."""
    found: dict[str, list[str]] = {}
    subfolders = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subfolders.append(entry.name)
            elif (stem := _video_stem(entry.name)) is not None:
                found.setdefault(stem, []).append(entry.name)
    for sub in subfolders:
        with os.scandir(folder / sub) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if (stem := _video_stem(entry.name)) is not None and entry.is_file():
                    found.setdefault(stem, []).append(f"{sub}/{entry.name}")
    return found


def _folder_key(name: str) -> str:
    """A class name as folder names spell it in any of the usual downloads: the CSV's
    ``passing American football (in game)``, CVDF's folders (the same), mmaction2's renamed
    ``passing_American_football_(in_game)`` and scripts that also drop the brackets all give
    ``passing_american_football_in_game``."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _annotation_file(folder: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` present in ``folder``; an error saying what is expected where."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    if not folder.is_dir():
        raise PlayspeedError(f"{folder}: annotation folder not found (expected {what} in it)")
    raise PlayspeedError(f"{folder}: no {' or '.join(names)} here (the {what})")


class Kinetics(VideoDataset):
    """Kinetics-400/600/700, ``subset`` "train", "test" (the validation clips: the field's
    test set, as the official test labels were long held out) or "all" (both).

    ``splits`` holds the official annotation CSVs: ``train.csv`` and ``validate.csv``
    (DeepMind's archives) or ``val.csv`` (CVDF's mirror), with the columns ``label``,
    ``youtube_id``, ``time_start`` and ``time_end`` (whole seconds); the others of each
    release (``split``; ``is_cc`` in Kinetics-400) are not needed, and ``test.csv`` (no
    labels in most releases) is not read. Classes are train.csv's labels, sorted; labels
    index them. Clips are ``<youtube_id>_<start:06d>_<end:06d>.mp4`` (any video ending; a
    copy named ``<youtube_id>.mp4`` is found too) in ``videos/train`` and
    ``videos/validate`` or ``videos/val`` (mmaction2's ``videos_train``, ``videos_val``
    also do), per file either directly in that folder (CVDF's layout) or in a class folder
    below it (the ActivityNet downloader, CVDF's ``arrange_by_classes.py``, mmaction2's
    underscored names): a clip is found by its file name, and only where the same name lies
    in several folders does the one named like its label (compared by :func:`_folder_key`)
    win, then the flat one. Listed clips that are not on disk are skipped and listed in
    ``missing``. A record's ``group`` is its YouTube video, so a hold-out never splits the
    clips of one video.
    """

    COLUMNS = ("label", "youtube_id", "time_start", "time_end")
    _CSVS = {"train": [("train.csv",)], "test": [("validate.csv", "val.csv")],
             "all": [("train.csv",), ("validate.csv", "val.csv")]}
    _FOLDERS = {"train.csv": ("train", "videos_train"),
                "validate.csv": ("validate", "val", "videos_val"),
                "val.csv": ("val", "validate", "videos_val")}

    def __init__(self, videos: str | os.PathLike, splits: str | os.PathLike, *,
                 subset: str = "train") -> None:
        videos, splits = _annotated_roots(videos, splits, subset)
        train_csv = _annotation_file(splits, ("train.csv",), "Kinetics annotation CSVs")
        classes = sorted({row["label"] for _, row in self._rows(train_csv)})
        lookup = {name: label for label, name in enumerate(classes)}
        records, missing, seen = [], [], set()
        for names in self._CSVS[subset]:
            csv_file = _annotation_file(splits, names, "Kinetics annotation CSVs")
            folder = self._clip_folder(videos, csv_file.name)
            on_disk = _videos_by_stem(videos / folder)
            for line, row in self._rows(csv_file):
                label = lookup.get(row["label"])
                if label is None:
                    raise PlayspeedError(f"{csv_file}:{line}: unknown label {row['label']!r} "
                                         f"(not in {train_csv})")
                name = (f"{row['youtube_id']}_{row['time_start']:06d}_"
                        f"{row['time_end']:06d}")
                found = on_disk.get(name) or on_disk.get(row["youtube_id"])
                if not found:
                    missing.append(f"{csv_file}:{line}: video '{name}.mp4' not found in "
                                   f"{videos / folder} (flat or in a class folder)")
                    continue
                key = f"{folder}/{self._pick(found, row['label'])}"
                if key not in seen:  # a clip listed twice is one record
                    seen.add(key)
                    records.append(VideoRecord(path=videos / key, label=label, key=key,
                                               group=row["youtube_id"]))
        _warn_missing(missing, videos)
        super().__init__(records, classes, missing)

    @classmethod
    def _rows(cls, path: Path) -> Iterator[tuple[int, dict]]:
        """(line number, row) of every row, times as ints; bad files raise naming the line."""
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, skipinitialspace=True)
            header = [name.strip() for name in reader.fieldnames or ()]
            absent = [name for name in cls.COLUMNS if name not in header]
            if absent:
                raise PlayspeedError(
                    f"{path}: missing column {', '.join(map(repr, absent))} (header "
                    f"{','.join(header) or '(empty)'!r}; expected {','.join(cls.COLUMNS)},...)")
            reader.fieldnames = header
            for row in reader:
                if not any((row.get(name) or "").strip() for name in header):
                    continue  # a blank line
                where = f"{path}:{reader.line_num}"
                values = {name: (row.get(name) or "").strip() for name in cls.COLUMNS}
                if not values["label"] or not values["youtube_id"]:
                    raise PlayspeedError(f"{where}: empty label or youtube_id")
                for name in ("time_start", "time_end"):
                    try:
                        seconds = float(values[name])
                    except ValueError:
                        seconds = -1.0
                    if not (seconds >= 0 and seconds.is_integer()):
                        raise PlayspeedError(f"{where}: {name} {values[name]!r} is not a "
                                             "whole number of seconds")
                    values[name] = int(seconds)
                yield reader.line_num, values

    @classmethod
    def _clip_folder(cls, videos: Path, csv_name: str) -> str:
        for folder in cls._FOLDERS[csv_name]:
            if (videos / folder).is_dir():
                return folder
        expected = " or ".join(f"{videos / folder}/" for folder in cls._FOLDERS[csv_name])
        raise PlayspeedError(f"{videos}: no folder for the clips of {csv_name} "
                             f"(expected {expected})")

    @staticmethod
    def _pick(paths: list[str], label: str) -> str:
        if len(paths) > 1:
            wanted = _folder_key(label)
            for path in paths:
                if "/" in path and _folder_key(path.split("/")[0]) == wanted:
                    return path
        return paths[0]  # flat ones come first


class SSv2(VideoDataset):
    """Something-Something v2, ``subset`` "train", "test" (the validation videos: the test
    set's labels were never released) or "all" (both).

    ``splits`` holds the official annotation JSONs, named as in the original release
    (``something-something-v2-labels.json``, ``-train.json``, ``-validation.json``) or the
    later one (``labels.json``, ``train.json``, ``validation.json``). ``labels.json`` maps
    each template (``Pushing something from left to right``) to its class index (a string,
    0-based); the split files are lists of ``{"id", "label", "template", "placeholders"}``
    whose ``template`` has its placeholders in brackets (``Pushing [something] from left to
    right``): the label is that template with the brackets removed, looked up in
    labels.json, as the official baseline and mmaction2 do (an exact match, else one
    ignoring case). Classes are the templates in index order. Videos are ``videos/<id>.webm``
    (VP9; any video ending is accepted, for transcoded copies). Listed videos not on disk
    are skipped and listed in ``missing``.
    """

    _FILES = {part: (f"something-something-v2-{part}.json", f"{part}.json")
              for part in ("labels", "train", "validation")}
    _SUBSETS = {"train": ("train",), "test": ("validation",), "all": ("train", "validation")}

    def __init__(self, videos: str | os.PathLike, splits: str | os.PathLike, *,
                 subset: str = "train") -> None:
        videos, splits = _annotated_roots(videos, splits, subset)
        labels_file = _annotation_file(splits, self._FILES["labels"], "SSv2 label JSON")
        classes = self._read_classes(labels_file)
        lookup = {name: label for label, name in enumerate(classes)}
        folded = {name.casefold(): label for label, name in enumerate(classes)}
        on_disk = {stem: paths[0] for stem, paths in _videos_by_stem(videos).items()
                   if "/" not in paths[0]}
        records, missing, seen = [], [], set()
        for part in self._SUBSETS[subset]:
            split_file = _annotation_file(splits, self._FILES[part], f"SSv2 {part} JSON")
            for index, entry in enumerate(self._read_list(split_file)):
                where = f"{split_file}: entry {index}"
                if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                    raise PlayspeedError(f"{where}: expected an object with 'id' and "
                                         f"'template', got {json.dumps(entry)[:80]}")
                template = str(entry["template"]).replace("[", "").replace("]", "")
                label = lookup.get(template, folded.get(template.casefold()))
                if label is None:
                    raise PlayspeedError(f"{where} (id {entry['id']}): unknown label "
                                         f"{template!r} (not in {labels_file})")
                name = on_disk.get(str(entry["id"]))
                if name is None:
                    missing.append(f"{where}: video '{entry['id']}.webm' not found in {videos}")
                    continue
                if name not in seen:
                    seen.add(name)
                    records.append(VideoRecord(path=videos / name, label=label, key=name))
        _warn_missing(missing, videos)
        super().__init__(records, classes, missing)

    @staticmethod
    def _load(path: Path):
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except json.JSONDecodeError as err:
            raise PlayspeedError(f"{path}: not valid JSON ({err})") from None

    @classmethod
    def _read_list(cls, path: Path) -> list:
        entries = cls._load(path)
        if not isinstance(entries, list):
            raise PlayspeedError(f"{path}: expected a JSON list of videos, got a "
                                 f"{type(entries).__name__}")
        return entries

    @classmethod
    def _read_classes(cls, path: Path) -> list[str]:
        mapping = cls._load(path)
        if not isinstance(mapping, dict):
            raise PlayspeedError(f"{path}: expected a JSON object mapping each template to "
                                 f"its class index, got a {type(mapping).__name__}")
        names: dict[int, str] = {}
        for template, index in mapping.items():
            if not str(index).isdigit() or int(index) in names:
                raise PlayspeedError(f"{path}: template {template!r} has index {index!r} "
                                     "(expected distinct indices 0, 1, ...)")
            names[int(index)] = template
        if sorted(names) != list(range(len(names))):
            raise PlayspeedError(f"{path}: class indices must run 0..{len(names) - 1} "
                                 "without gaps")
        return [names[i] for i in range(len(names))]


#: Datasets read from split or annotation files that name one official split.
SINGLE_SPLIT = {"kinetics": Kinetics, "ssv2": SSv2}


def build_records(dataset: str, *, videos: str | os.PathLike,
                  splits: str | os.PathLike | None = None, split: int = 1,
                  subset: str = "train", skip_missing: bool = False,
                  list_file: str | os.PathLike | None = None) -> VideoDataset:
    """The records of ``dataset`` (a name in :data:`playspeed.config.DATASETS`).

    ``split`` and ``skip_missing`` apply to UCF-101 and HMDB-51 (Kinetics and SSv2 have
    one split and always skip missing videos), ``subset`` to all four official datasets,
    ``list_file`` to "folder".
    """
    if dataset not in DATASETS:
        raise PlayspeedError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    if dataset == "folder":
        return VideoFolder(videos, list_file=list_file)
    if splits is None:
        raise PlayspeedError(f"dataset {dataset!r} needs the folder of its official split or "
                             "annotation files (--splits, data.splits)")
    if dataset in SINGLE_SPLIT:
        if split != 1:
            raise PlayspeedError(f"dataset {dataset!r} has one official split; split must "
                                 f"be 1, got {split!r}")
        return SINGLE_SPLIT[dataset](videos, splits, subset=subset)
    cls = UCF101 if dataset == "ucf101" else HMDB51
    return cls(videos, splits, split=split, subset=subset, skip_missing=skip_missing)


def split_numbers(dataset: str, splits: str | os.PathLike) -> list[int]:
    """The official splits (1-3) whose files are present in ``splits``; [1] for the
    single-split datasets."""
    if dataset in SINGLE_SPLIT:
        return [1]
    splits = Path(splits)
    if dataset == "ucf101":
        pattern = re.compile(r"(?:train|test)list0([123])\.txt$")
    else:
        pattern = re.compile(r".+_test_split([123])\.txt$")
    found = {int(m.group(1)) for p in (splits.iterdir() if splits.is_dir() else ())
             if (m := pattern.match(p.name))}
    return sorted(found)
