from pathlib import Path

import pytest

from playspeed.data.datasets import (
    HMDB51,
    UCF101,
    VideoFolder,
    VideoRecord,
    build_records,
    split_numbers,
)
from playspeed.errors import PlayspeedError


def _touch(root: Path, *keys: str) -> None:
    for key in keys:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(b"")


def _write(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())  # CRLF as distributed
    return path


@pytest.fixture
def ucf(tmp_path):
    """A 3-class UCF-101 tree with the real data's case mismatch: folder HandStandPushups,
    classInd HandstandPushups."""
    videos, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    _touch(videos, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
           "HandStandPushups/v_HandStandPushups_g01_c01.avi",
           "HandStandPushups/v_HandStandPushups_g08_c02.avi",
           "YoYo/v_YoYo_g08_c01.avi", "YoYo/v_YoYo_g15_c01.avi")
    _write(splits / "classInd.txt", "1 ApplyEyeMakeup", "2 HandstandPushups", "3 YoYo")
    _write(splits / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
           "HandstandPushups/v_HandStandPushups_g08_c02.avi 2", "YoYo/v_YoYo_g08_c01.avi 3",
           "YoYo/v_YoYo_g15_c01.avi 3")
    _write(splits / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
           "HandstandPushups/v_HandStandPushups_g01_c01.avi", "")
    _write(splits / "trainlist02.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1")
    _write(splits / "testlist02.txt", "YoYo/v_YoYo_g15_c01.avi")
    return videos, splits


def test_ucf101_train_and_test(ucf):
    videos, splits = ucf
    train = UCF101(videos, splits)
    assert train.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    assert [r.label for r in train] == [0, 1, 2, 2]
    # The key is the path on disk, whatever the case in the list.
    # The group (scene) comes from the name: g08 -> "8".
    assert train[1] == VideoRecord(path=videos / "HandStandPushups/v_HandStandPushups_g08_c02.avi",
                                   label=1, key="HandStandPushups/v_HandStandPushups_g08_c02.avi",
                                   group="8")
    test = UCF101(videos, splits, subset="test")
    assert [(r.key.split("/")[0], r.label) for r in test] == [("ApplyEyeMakeup", 0),
                                                             ("HandStandPushups", 1)]
    assert len(UCF101(videos, splits, subset="all")) == 6
    split2 = UCF101(videos, splits, split=2, subset="test")
    assert [r.key for r in split2] == ["YoYo/v_YoYo_g15_c01.avi"] and split2[0].label == 2


def test_ucf101_matches_class_and_file_names_case_insensitively(ucf):
    videos, splits = ucf
    _write(splits / "testlist01.txt", "handstandpushups/V_HANDSTANDPUSHUPS_G01_C01.AVI")
    (record,) = UCF101(videos, splits, subset="test")
    assert record.key == "HandStandPushups/v_HandStandPushups_g01_c01.avi" and record.label == 1


@pytest.mark.parametrize("line, message", [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1 extra", "malformed line"),
    ("v_ApplyEyeMakeup_g08_c01.avi 1", "malformed line"),
    ("Juggling/v_Juggling_g08_c01.avi 1", "unknown class 'Juggling'"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 3", "label '3' does not match"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi one", "label 'one' does not match"),
    ("YoYo/v_YoYo_g09_c01.avi 3", "video 'YoYo/v_YoYo_g09_c01.avi' not found"),
])
def test_ucf101_bad_lines_name_file_and_line(ucf, line, message):
    videos, splits = ucf
    _write(splits / "trainlist01.txt", "YoYo/v_YoYo_g08_c01.avi 3", line)
    with pytest.raises(PlayspeedError, match=message) as error:
        UCF101(videos, splits)
    assert str(error.value).startswith(f"{splits / 'trainlist01.txt'}:2: ")


def test_ucf101_skip_missing_counts_and_warns(ucf):
    videos, splits = ucf
    _write(splits / "trainlist01.txt", "YoYo/v_YoYo_g08_c01.avi 3", "YoYo/v_YoYo_g09_c01.avi 3",
           "Yoyo/v_YoYo_g10_c01.avi 3")
    with pytest.warns(UserWarning, match="2 listed videos are missing"):
        train = UCF101(videos, splits, skip_missing=True)
    assert [r.key for r in train] == ["YoYo/v_YoYo_g08_c01.avi"]
    assert len(train.missing) == 2 and "trainlist01.txt:2:" in train.missing[0]


@pytest.mark.parametrize("lines, message", [
    (["1 ApplyEyeMakeup", "2"], "classInd.txt:2: malformed line"),
    (["1 ApplyEyeMakeup", "x YoYo"], "classInd.txt:2: malformed line"),
    (["1 ApplyEyeMakeup", "3 YoYo"], "class indices must run 1..2"),
    (["1 ApplyEyeMakeup", "2 applyeyemakeup"], "classInd.txt:2: class 2 applyeyemakeup listed"),
])
def test_ucf101_bad_class_index(ucf, lines, message):
    videos, splits = ucf
    _write(splits / "classInd.txt", *lines)
    with pytest.raises(PlayspeedError, match=message):
        UCF101(videos, splits)


def test_ucf101_missing_files_and_bad_choices(ucf, tmp_path):
    videos, splits = ucf
    with pytest.raises(PlayspeedError, match="trainlist03.txt: split file not found"):
        UCF101(videos, splits, split=3)
    with pytest.raises(PlayspeedError, match="classInd.txt: split file not found"):
        UCF101(videos, tmp_path / "nowhere")
    with pytest.raises(PlayspeedError, match="videos folder not found"):
        UCF101(tmp_path / "nowhere", splits)
    with pytest.raises(PlayspeedError, match="split must be 1, 2 or 3"):
        UCF101(videos, splits, split=4)
    with pytest.raises(PlayspeedError, match="subset must be one of"):
        UCF101(videos, splits, subset="val")
    assert split_numbers("ucf101", splits) == [1, 2]


@pytest.fixture
def hmdb(tmp_path):
    videos, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    _touch(videos, "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
           "brush_hair/Blonde_hair_brush_f_nm_np1_fr_goo_0.avi",
           "brush_hair/Aussie_Brush_h_nm_np1_le_goo_1.avi",
           "Cartwheel/Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi",
           "Cartwheel/Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi")
    # The real files end lines with a space before the newline.
    _write(splits / "brush_hair_test_split1.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 ",
           "Blonde_hair_brush_f_nm_np1_fr_goo_0.avi 2 ", "Aussie_Brush_h_nm_np1_le_goo_1.avi 0 ")
    _write(splits / "cartwheel_test_split1.txt",
           "Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi 2 ",
           "Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi 1 ")
    return videos, splits


def test_hmdb51_subsets_labels_and_case(hmdb):
    videos, splits = hmdb
    train = HMDB51(videos, splits)
    assert train.classes == ["brush_hair", "cartwheel"]
    assert [(r.key, r.label) for r in train] == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        ("Cartwheel/Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi", 1)]
    assert {r.group for r in train} == {None}  # HMDB-51 names no scenes
    test = HMDB51(videos, splits, subset="test")
    assert [r.label for r in test] == [0, 1]
    assert len(HMDB51(videos, splits, subset="all")) == 5  # "0 = unused" included
    assert split_numbers("hmdb51", splits) == [1]


@pytest.mark.parametrize("line, message", [
    ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "malformed line"),
    ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 3", "malformed line"),
    ("missing_video.avi 1", "video 'brush_hair/missing_video.avi' not found"),
])
def test_hmdb51_bad_lines_name_file_and_line(hmdb, line, message):
    videos, splits = hmdb
    split_file = _write(splits / "brush_hair_test_split1.txt",
                        "Blonde_hair_brush_f_nm_np1_fr_goo_0.avi 2", line)
    with pytest.raises(PlayspeedError, match=message) as error:
        HMDB51(videos, splits)
    assert str(error.value).startswith(f"{split_file}:2: ")


def test_hmdb51_class_without_folder_and_missing_split(hmdb):
    videos, splits = hmdb
    _write(splits / "juggle_test_split1.txt", "juggling_video.avi 1")
    with pytest.raises(PlayspeedError, match="juggle_test_split1.txt:1: video 'juggle/"):
        HMDB51(videos, splits)
    with pytest.warns(UserWarning, match="1 listed videos are missing"):
        train = HMDB51(videos, splits, skip_missing=True)
    assert train.classes == ["brush_hair", "cartwheel", "juggle"] and len(train) == 2
    with pytest.raises(PlayspeedError, match="no split files '<class>_test_split2.txt'"):
        HMDB51(videos, splits, split=2)


def test_video_folder_scan_and_list(tmp_path):
    root = tmp_path / "videos"
    _touch(root, "b_class/x.mp4", "a_class/y.AVI", "a_class/deeper/z.mkv", "a_class/notes.txt",
           "loose.webm", ".hidden/w.avi")
    folder = VideoFolder(root)
    assert folder.classes == ["a_class", "b_class"]
    assert [(r.key, r.label) for r in folder] == [
        ("a_class/deeper/z.mkv", 0), ("a_class/y.AVI", 0), ("b_class/x.mp4", 1), ("loose.webm", -1)]
    listed = VideoFolder(root, list_file=_write(tmp_path / "list.txt", "b_class/x.mp4",
                                                str(root / "a_class/notes.txt")))
    assert [(r.key, r.label) for r in listed] == [("b_class/x.mp4", 1), ("a_class/notes.txt", 0)]
    with pytest.raises(PlayspeedError, match=r"list.txt:2: video 'b_class/gone.mp4' not found"):
        VideoFolder(root, list_file=_write(tmp_path / "list.txt", "loose.webm", "b_class/gone.mp4"))
    outside = _write(tmp_path / "elsewhere.avi")
    with pytest.raises(PlayspeedError, match="list.txt:1: .* is outside"):
        VideoFolder(root, list_file=_write(tmp_path / "list.txt", str(outside)))


def test_build_records_dispatches(ucf, hmdb, tmp_path):
    videos, splits = ucf
    assert build_records("ucf101", videos=videos, splits=splits, subset="test")[0].label == 0
    assert build_records("hmdb51", videos=hmdb[0], splits=hmdb[1]).classes[0] == "brush_hair"
    assert len(build_records("folder", videos=videos)) == 6
    with pytest.raises(PlayspeedError, match="needs the folder of its official split files"):
        build_records("ucf101", videos=videos)
    with pytest.raises(PlayspeedError, match="unknown dataset 'kinetics'"):
        build_records("kinetics", videos=videos, splits=splits)
