import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

import playspeed.data.prepare as prepare
from playspeed.cli import main
from playspeed.data.datasets import UCF101
from playspeed.data.prepare import (
    MERGE_LOCK,
    REPORT,
    prepare_dataset,
    prepare_store,
    records_to_prepare,
    shard_report,
)
from playspeed.data.store import (
    FRAMES_DIR,
    INDEX,
    JOURNAL,
    FrameStore,
    frames_path,
    shard_journal,
    temporary_files,
)
from playspeed.errors import PlayspeedError


def _snapshot(root):
    """Every file of a store but the run report, as bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != REPORT}


def _ucf(synth_root, **kwargs):
    return dict(videos=synth_root / "UCF-101", splits=synth_root / "ucfTrainTestlist", **kwargs)


def test_prepare_indexes_every_listed_video(synth_root, synth_store):
    store = FrameStore(synth_store)
    assert store.keys() == sorted(r.key for r in UCF101(**_ucf(synth_root), subset="all"))
    assert store.info(store.keys()[0]) == {"num_frames": 40, "fps": 25.0, "height": 128,
                                           "width": 171}
    report = json.loads((synth_store / REPORT).read_text())
    assert report["prepared"] == 12 and report["failed"] == [] and report["missing"] == []
    assert not (synth_store / JOURNAL).exists()


def test_interrupted_run_resumes_to_an_identical_store(synth_root, synth_store, tmp_path,
                                                       monkeypatch):
    records, _ = records_to_prepare("ucf101", **_ucf(synth_root))
    out = tmp_path / "store"
    calls = {"frames": 0}
    to_rgb = prepare.to_rgb

    def interrupted(frame, size):
        calls["frames"] += 1
        if calls["frames"] == 3 * 40 + 10:  # a third of the way into the fourth video
            raise KeyboardInterrupt
        return to_rgb(frame, size)

    monkeypatch.setattr(prepare, "to_rgb", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_store(records, out, progress=False)
    assert not (out / REPORT).exists()  # not finished
    # Only the three finished videos are visible, no partial file.
    assert FrameStore(out).keys() == [r.key for r in records[:3]]
    assert sorted(p.name for p in (out / FRAMES_DIR).rglob("*") if p.is_file()) == \
        sorted(frames_path(out, r.key).name for r in records[:3])

    monkeypatch.setattr(prepare, "to_rgb", to_rgb)
    report = prepare_store(records, out, progress=False)
    assert report.already_prepared == 3 and report.prepared == [r.key for r in records[3:]]
    assert _snapshot(out) == _snapshot(synth_store)


def test_killed_run_leftovers_are_recovered(synth_root, synth_store, tmp_path):
    """A SIGKILL skips all cleanup: the journal holds the finished videos (its last line
    maybe cut short), index.json lacks them, and a temporary file lies around."""
    out = tmp_path / "store"
    shutil.copytree(synth_store, out)
    index = json.loads((out / INDEX).read_text())
    videos = index.pop("videos")
    done = sorted(videos)[:4]
    (out / INDEX).write_text(json.dumps({**index, "videos": {}}))
    lines = [json.dumps({"key": key, **videos[key]}) for key in done]
    (out / JOURNAL).write_text("\n".join(lines) + "\n" + lines[0][:17])
    for key in sorted(videos)[4:]:
        frames_path(out, key).unlink()
    stale = frames_path(out, sorted(videos)[5]).with_name(".v.avi.frames.999.tmp")
    stale.write_bytes(b"half a video")

    assert FrameStore(out).keys() == done  # the journal counts while a run is unfinished
    report = prepare_dataset("ucf101", **_ucf(synth_root), out=out, progress=False)
    assert report.already_prepared == 4 and len(report.prepared) == 8
    assert not stale.exists() and not (out / JOURNAL).exists()
    assert _snapshot(out) == _snapshot(synth_store)


def test_rerun_changes_nothing_and_settings_must_match(synth_root, synth_store, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(synth_store, out)
    times = {p: p.stat().st_mtime_ns for p in (out / FRAMES_DIR).rglob("*.frames")}
    report = prepare_dataset("ucf101", **_ucf(synth_root), out=out, progress=False)
    assert report.prepared == [] and report.already_prepared == 12 and report.num_warnings == 0
    assert {p: p.stat().st_mtime_ns for p in times} == times
    assert _snapshot(out) == _snapshot(synth_store)
    with pytest.raises(PlayspeedError, match="prepared with format jpeg quality 90, size "
                                             "128x171, this run asks for format raw"):
        prepare_dataset("ucf101", **_ucf(synth_root), out=out, fmt="raw", progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(PlayspeedError, match="exists and is not a frame store"):
        prepare_dataset("ucf101", **_ucf(synth_root), out=tmp_path / "other", progress=False)


@pytest.mark.slow
def test_parallel_workers_give_the_same_store(synth_root, synth_store, tmp_path):
    prepare_dataset("ucf101", **_ucf(synth_root), out=tmp_path / "store", workers=2,
                    progress=False)
    assert _snapshot(tmp_path / "store") == _snapshot(synth_store)


@pytest.fixture
def damaged(synth_root, tmp_path):
    """A folder of two good videos and every kind of bad one."""
    root = tmp_path / "videos" / "mixed"
    root.mkdir(parents=True)
    good = sorted((synth_root / "UCF-101").rglob("*.avi"))[:2]
    for path in good:
        shutil.copy(path, root / path.name)
    (root / "empty.avi").write_bytes(b"")
    (root / "garbage.avi").write_bytes(bytes(range(256)) * 40)
    (root / "notes.mp4").write_text("not a video\n")
    data = good[0].read_bytes()
    (root / "truncated.avi").write_bytes(data[: len(data) // 2])
    with av.open(str(root / "no_frames.avi"), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()  # headers, no frames
    return root.parent


def test_unreadable_videos_are_reported_and_the_rest_prepared(damaged, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["prepare", "--dataset", "folder", "--videos", str(damaged),
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads((out / REPORT).read_text())
    reasons = {entry["key"]: entry["reason"] for entry in report["failed"]}
    assert set(reasons) == {"mixed/empty.avi", "mixed/garbage.avi", "mixed/notes.mp4",
                            "mixed/no_frames.avi"}
    assert reasons["mixed/empty.avi"] == "empty file (0 bytes)"
    assert "cannot open video" in reasons["mixed/garbage.avi"]
    assert "no frames" in reasons["mixed/no_frames.avi"]
    store = FrameStore(out)
    assert "mixed/truncated.avi" in store and store.num_frames("mixed/truncated.avi") < 40
    assert [w["key"] for w in report["warnings"]] == ["mixed/truncated.avi"]
    assert len(store) == 3
    for key in reasons:
        assert f"warning: {damaged / key}: " in captured.err
    assert "3 videos prepared, 0 already there; 5 warnings" in captured.out


def test_nothing_preparable_is_an_error(tmp_path, capsys):
    (tmp_path / "videos" / "c").mkdir(parents=True)
    (tmp_path / "videos" / "c" / "bad.avi").write_bytes(b"\0" * 100)
    code = main(["prepare", "--dataset", "folder", "--videos", str(tmp_path / "videos"),
                 "--out", str(tmp_path / "store")])
    assert code == 2
    assert "no video could be prepared (1 unreadable" in capsys.readouterr().err


def test_missing_listed_videos_fail_or_warn(synth_root, tmp_path, capsys):
    splits = tmp_path / "lists"
    shutil.copytree(synth_root / "ucfTrainTestlist", splits)
    with open(splits / "trainlist02.txt", "a") as handle:
        handle.write("MoveLeft/v_MoveLeft_g09_c01.avi 1\r\n")
    args = ["prepare", "--dataset", "ucf101", "--videos", str(synth_root / "UCF-101"),
            "--splits", str(splits), "--out", str(tmp_path / "store")]
    assert main(args) == 2
    assert "trainlist02.txt:10: video 'MoveLeft/v_MoveLeft_g09_c01.avi' not found" in \
        capsys.readouterr().err
    assert main([*args, "--skip-missing"]) == 0
    captured = capsys.readouterr()
    assert "12 videos prepared, 0 already there; 1 warnings" in captured.out
    assert "warning: " in captured.err and "v_MoveLeft_g09_c01.avi" in captured.err


# --- Kinetics and SSv2: missing videos are listed, never fatal ---


@pytest.mark.parametrize("dataset", ["kinetics", "ssv2"])
def test_missing_videos_are_counted_listed_and_skipped(dataset, kinetics_root, ssv2_root,
                                                       tmp_path, capsys, monkeypatch):
    data = {"kinetics": kinetics_root, "ssv2": ssv2_root}[dataset]
    monkeypatch.setattr(prepare, "MISSING_SHOWN", 1)
    out = tmp_path / "store"
    assert main(["prepare", "--dataset", dataset, "--videos", str(data["videos"]),
                 "--splits", str(data["annotations"]), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    total = data["train"] + data["test"]
    assert (f"{total} videos prepared, 0 already there; 2 warnings, 2 of them listed videos "
            f"missing (see {out / REPORT})") in captured.out
    report = json.loads((out / REPORT).read_text())
    assert report["num_missing"] == 2 and report["failed"] == []
    assert [line.split("video '")[1].split("'")[0] for line in report["missing"]] == \
        data["missing"]
    # One missing video named as the run starts (MISSING_SHOWN), the rest counted.
    assert f"warning: {report['missing'][0]}" in captured.err
    assert "... and 1 more listed videos missing (all in the report)" in captured.err
    store = FrameStore(out)
    assert len(store) == total
    assert {store.num_frames(key) for key in store.keys()} == {40}  # H.264 / VP9, all decoded


# --- sharded preparation ---


def _kinetics(kinetics_root, **kwargs):
    return dict(videos=kinetics_root["videos"], splits=kinetics_root["annotations"], **kwargs)


@pytest.fixture(scope="module")
def kinetics_store(kinetics_root, tmp_path_factory):
    """``kinetics_root`` prepared in one unsharded run: what every sharded run must equal."""
    out = tmp_path_factory.mktemp("kinetics_store") / "store"
    prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False)
    return out


def _store_bytes(root):
    """index.json and every .frames file: what must equal between two ways of preparing."""
    return {key: data for key, data in _snapshot(root).items()
            if key == INDEX or (key.startswith(f"{FRAMES_DIR}/") and key.endswith(".frames"))}


def test_shards_then_an_unsharded_run_merge_into_the_same_store(kinetics_root, kinetics_store,
                                                                tmp_path):
    out = tmp_path / "store"
    keys = FrameStore(kinetics_store).keys()
    report = prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False,
                             shard=(0, 2))
    assert report.prepared == keys[0::2] and report.pending == [1] and not report.merged
    # Only a merge writes index.json; readers see the shard's journal meanwhile.
    assert json.loads((out / INDEX).read_text())["videos"] == {}
    assert FrameStore(out).keys() == keys[0::2]
    assert (out / shard_journal(0, 2)).is_file() and (out / shard_report(0, 2)).is_file()
    assert not (out / REPORT).exists()
    # The next prepare without --shard prepares the rest and folds the shard's work in.
    report = prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False)
    assert report.already_prepared == len(keys[0::2]) and report.prepared == keys[1::2]
    assert _store_bytes(out) == _store_bytes(kinetics_store)
    assert sorted(p.name for p in out.iterdir()) == [FRAMES_DIR, INDEX, REPORT]


def test_interrupted_shard_resumes_and_the_last_shard_merges(kinetics_root, kinetics_store,
                                                             tmp_path, monkeypatch):
    out = tmp_path / "store"
    keys = FrameStore(kinetics_store).keys()
    calls = {"frames": 0}
    to_rgb = prepare.to_rgb

    def interrupted(frame, size):
        calls["frames"] += 1
        if calls["frames"] == 2 * 40 + 10:  # a quarter into shard 1's third video
            raise KeyboardInterrupt
        return to_rgb(frame, size)

    monkeypatch.setattr(prepare, "to_rgb", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False,
                        shard=(1, 2))
    monkeypatch.setattr(prepare, "to_rgb", to_rgb)
    # As a SIGKILL leaves it: the journal's last line cut short, a temporary file; and
    # shard 0, running on another machine, is writing a video of its own.
    with open(out / shard_journal(1, 2), "a") as journal:
        journal.write('{"key": "train/air_dru')
    own = frames_path(out, keys[5]).with_name(f".{Path(keys[5]).name}.frames.77.tmp")
    own.write_bytes(b"half a video")
    theirs = frames_path(out, keys[0]).with_name(f".{Path(keys[0]).name}.frames.99.tmp")
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_bytes(b"shard 0 at work")
    assert FrameStore(out).keys() == keys[1::2][:2]

    report = prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False,
                             shard=(1, 2))
    assert report.already_prepared == 2 and report.prepared == keys[1::2][2:]
    assert report.pending == [0] and not own.exists() and theirs.exists()
    theirs.unlink()
    report = prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False,
                             shard=(0, 2))
    assert report.merged and report.pending == []
    assert _store_bytes(out) == _store_bytes(kinetics_store)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [FRAMES_DIR, INDEX, REPORT, shard_report(0, 2), shard_report(1, 2)])
    merged, whole = (json.loads((root / REPORT).read_text()) for root in (out, kinetics_store))
    assert merged["shards"] == 2 and merged["requested"] == whole["requested"] == len(keys)
    assert merged["prepared"] + merged["already_prepared"] == len(keys)
    assert merged["missing"] == whole["missing"] and len(merged["missing"]) == 2
    # Rerunning a finished shard changes nothing and merges again (the report comes back).
    assert prepare_dataset("kinetics", **_kinetics(kinetics_root), out=out, progress=False,
                           shard=(1, 2)).merged
    assert (out / REPORT).is_file() and _store_bytes(out) == _store_bytes(kinetics_store)


def test_merge_lock_lets_one_shard_merge(kinetics_root, kinetics_store, tmp_path, capsys):
    out = tmp_path / "store"
    args = ["prepare", "--dataset", "kinetics", "--videos", str(kinetics_root["videos"]),
            "--splits", str(kinetics_root["annotations"]), "--out", str(out)]
    assert main([*args, "--shard", "0/2"]) == 0
    assert "waiting for shard 1: the last to finish merges the index" in capsys.readouterr().out
    (out / MERGE_LOCK).write_text("")  # another shard, finishing at the same moment, merges
    assert main([*args, "--shard", "1/2"]) == 0
    assert "another shard is merging the index" in capsys.readouterr().out
    assert json.loads((out / INDEX).read_text())["videos"] == {}
    # A merge killed while holding the lock: the next prepare without --shard merges.
    assert main(args) == 0
    assert not (out / MERGE_LOCK).exists() and _store_bytes(out) == _store_bytes(kinetics_store)


def test_stale_shard_reports_of_another_video_list_do_not_merge(kinetics_root, tmp_path):
    out = tmp_path / "store"
    records, missing = records_to_prepare("kinetics", **_kinetics(kinetics_root))
    prepare_store(records[:4], out, progress=False, shard=(1, 2))
    # Shard 1's report is of another list: shard 0 of the full list waits for it.
    report = prepare_store(records, out, progress=False, shard=(0, 2), missing=missing)
    assert report.pending == [1] and not report.merged


def test_bad_shard_is_refused(kinetics_root, tmp_path, capsys):
    args = ["prepare", "--dataset", "kinetics", "--videos", str(kinetics_root["videos"]),
            "--splits", str(kinetics_root["annotations"]), "--out", str(tmp_path / "s")]
    for shard in ("2/2", "1", "-1/2", "a/b"):
        assert main([*args, f"--shard={shard}"]) == 2
        assert capsys.readouterr().err == (f"error: --shard {shard!r}: expected I/N with "
                                           "0 <= I < N, e.g. 0/4\n")
    with pytest.raises(PlayspeedError, match=r"shard must be \(I, N\) with 0 <= I < N"):
        prepare_dataset("kinetics", **_kinetics(kinetics_root), out=tmp_path / "s", shard=(0, 0))


# Loaded by the killed shard's interpreter (a sitecustomize module on its PYTHONPATH): it
# stops the shard for good in the middle of its third video, once two are journaled, and
# says so in a file, so that the test kills it at a known point, however slow the machine.
_STOP_IN_THIRD_VIDEO = """
import os, time
import playspeed.data.prepare as prepare

_to_rgb, _frames = prepare.to_rgb, [0]

def _stopping(frame, size):
    _frames[0] += 1
    if _frames[0] == 2 * 40 + 10:
        open(os.environ["STOPPED_FILE"], "w").close()
        time.sleep(600)
    return _to_rgb(frame, size)

prepare.to_rgb = _stopping
"""


@pytest.mark.slow
def test_two_shard_processes_one_killed_and_resumed_equal_an_unsharded_store(
        kinetics_root, kinetics_store, tmp_path):
    out, stopped = tmp_path / "store", tmp_path / "stopped"
    keys = FrameStore(kinetics_store).keys()
    command = [sys.executable, "-m", "playspeed", "prepare", "--dataset", "kinetics",
               "--videos", str(kinetics_root["videos"]),
               "--splits", str(kinetics_root["annotations"]), "--out", str(out)]
    (tmp_path / "stopper").mkdir()
    (tmp_path / "stopper" / "sitecustomize.py").write_text(_STOP_IN_THIRD_VIDEO)
    stopping = {**os.environ, "STOPPED_FILE": str(stopped),
                "PYTHONPATH": os.pathsep.join([str(tmp_path / "stopper"),
                                               os.environ.get("PYTHONPATH", "")])}
    second = subprocess.Popen([*command, "--shard", "1/2"], env=stopping, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = subprocess.run([*command, "--shard", "0/2"], capture_output=True, text=True,
                               timeout=300)
        deadline = time.monotonic() + 300
        while not stopped.exists():
            assert second.poll() is None, second.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # While shard 1 runs: shard 0 is done and waits for it; the store is readable.
        assert first.returncode == 0, first.stderr[-2000:]
        assert "waiting for shard 1: the last to finish merges the index" in first.stdout
        assert FrameStore(out).keys() == sorted(keys[0::2] + keys[1::2][:2])
        assert json.loads((out / INDEX).read_text())["videos"] == {}
        assert list(temporary_files(out).values()) == [keys[1::2][2]]
    finally:
        second.kill()  # SIGKILL: no cleanup at all
        second.communicate()
    assert not (out / REPORT).exists()
    resumed = subprocess.run([*command, "--shard", "1/2"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (f"{out} shard 1/2: {len(keys[1::2]) - 2} videos prepared, 2 already there"
            in resumed.stdout)
    assert "all 2 shards done, index merged" in resumed.stdout
    assert _store_bytes(out) == _store_bytes(kinetics_store)
    assert not temporary_files(out) and not list(out.glob("*.jsonl"))
    merged = json.loads((out / REPORT).read_text())
    assert merged["missing"] == json.loads((kinetics_store / REPORT).read_text())["missing"]
