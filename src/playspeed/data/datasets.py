"""Video records from the official UCF-101 / HMDB-51 split files or from a folder tree.

A dataset is a sequence of :class:`VideoRecord` with 0-based integer labels and a
``classes`` list; nothing downstream parses file names. Class and file names are matched
against the disk case-insensitively (the real UCF-101 has ``HandStandPushups`` folders but
``HandstandPushups`` in classInd.txt); a record's ``key`` is its path as found on disk.
Bad split files raise :class:`PlayspeedError` naming the file and line.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

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
    if subset not in SUBSETS:
        raise PlayspeedError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")


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


DATASETS = ("ucf101", "hmdb51", "folder")


def build_records(dataset: str, *, videos: str | os.PathLike,
                  splits: str | os.PathLike | None = None, split: int = 1,
                  subset: str = "train", skip_missing: bool = False,
                  list_file: str | os.PathLike | None = None) -> VideoDataset:
    """The records of ``dataset`` ("ucf101", "hmdb51" or "folder"), as named in configs.

    ``split``, ``subset`` and ``skip_missing`` apply to the two official datasets,
    ``list_file`` to "folder".
    """
    if dataset == "folder":
        return VideoFolder(videos, list_file=list_file)
    if dataset not in DATASETS:
        raise PlayspeedError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    if splits is None:
        raise PlayspeedError(f"dataset {dataset!r} needs the folder of its official split files")
    cls = UCF101 if dataset == "ucf101" else HMDB51
    return cls(videos, splits, split=split, subset=subset, skip_missing=skip_missing)


def split_numbers(dataset: str, splits: str | os.PathLike) -> list[int]:
    """The official splits (1-3) whose files are present in ``splits``."""
    splits = Path(splits)
    if dataset == "ucf101":
        pattern = re.compile(r"(?:train|test)list0([123])\.txt$")
    else:
        pattern = re.compile(r".+_test_split([123])\.txt$")
    found = {int(m.group(1)) for p in (splits.iterdir() if splits.is_dir() else ())
             if (m := pattern.match(p.name))}
    return sorted(found)
