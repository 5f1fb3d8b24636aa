import json
import re
from pathlib import Path

import pytest

from playspeed.data.datasets import (
    HMDB51,
    UCF101,
    Kinetics,
    SSv2,
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
    with pytest.raises(PlayspeedError, match="needs the folder of its official split or "
                                             "annotation files"):
        build_records("ucf101", videos=videos)
    with pytest.raises(PlayspeedError, match="unknown dataset 'kinetics700'"):
        build_records("kinetics700", videos=videos, splits=splits)


# --- Kinetics: the official CSVs, clips flat or in class folders ---

K400_HEADER = "label,youtube_id,time_start,time_end,split,is_cc"  # Kinetics-400's CSVs
K700_HEADER = "label,youtube_id,time_start,time_end,split"  # Kinetics-600/700: no is_cc


@pytest.fixture
def kinetics(tmp_path):
    """Train clips in class folders named as mmaction2 renames them (underscores) and as
    CVDF's arrange script leaves them (spaces); validation clips flat, as CVDF ships them.
    Labels with spaces, brackets and an apostrophe, quoted as in the Kinetics-400 CSVs."""
    videos, annotations = tmp_path / "videos", tmp_path / "annotations"
    _touch(videos, "train/passing_American_football_(in_game)/-3B32lodo2M_000059_000069.mp4",
           "train/passing_American_football_(in_game)/a_b-c_d_e_000000_000010.mp4",
           "train/air drumming/--nQbRBEz2s_000104_000114.mp4",
           "train/massaging_person's_head/zzzzzzzzzzz_000003_000013.mp4",
           "val/---QUuC4vJs_000084_000094.mp4", "val/xxxxxxxxxxx_000010_000020.mp4",
           "val/partial_000000_000010.mp4.part")
    _write(annotations / "train.csv", K400_HEADER,
           '"passing American football (in game)",-3B32lodo2M,59,69,train,0',
           '"air drumming",--nQbRBEz2s,104,114,train,1',
           "\"massaging person's head\",zzzzzzzzzzz,3,13,train,0",
           '"passing American football (in game)",a_b-c_d_e,0,10,train,0',
           '"air drumming",gone_from_yt,5,15,train,0')
    _write(annotations / "validate.csv", K700_HEADER,
           "air drumming,---QUuC4vJs,84,94,validate",
           "passing American football (in game),xxxxxxxxxxx,10.0,20.0,validate",
           "air drumming,partial,0,10,validate", "")
    return videos, annotations


def test_kinetics_subsets_labels_and_layouts(kinetics):
    videos, annotations = kinetics
    with pytest.warns(UserWarning, match="1 listed videos are missing"):
        train = Kinetics(videos, annotations)
    assert train.classes == ["air drumming", "massaging person's head",
                             "passing American football (in game)"]
    assert [(r.key, r.label, r.group) for r in train] == [
        ("train/passing_American_football_(in_game)/-3B32lodo2M_000059_000069.mp4", 2,
         "-3B32lodo2M"),
        ("train/air drumming/--nQbRBEz2s_000104_000114.mp4", 0, "--nQbRBEz2s"),
        ("train/massaging_person's_head/zzzzzzzzzzz_000003_000013.mp4", 1, "zzzzzzzzzzz"),
        ("train/passing_American_football_(in_game)/a_b-c_d_e_000000_000010.mp4", 2,
         "a_b-c_d_e")]
    assert train[0].path == videos / train[0].key
    assert train.missing == [f"{annotations / 'train.csv'}:6: video "
                             f"'gone_from_yt_000005_000015.mp4' not found in {videos / 'train'} "
                             "(flat or in a class folder)"]
    # "test" is the validation CSV; a '.part' download is no video.
    with pytest.warns(UserWarning, match="1 listed videos are missing"):
        test = Kinetics(videos, annotations, subset="test")
    assert [(r.key, r.label) for r in test] == [("val/---QUuC4vJs_000084_000094.mp4", 0),
                                                ("val/xxxxxxxxxxx_000010_000020.mp4", 2)]
    assert test.classes == train.classes and "validate.csv:4: video 'partial_" in test.missing[0]
    with pytest.warns(UserWarning, match="2 listed videos are missing"):
        assert len(Kinetics(videos, annotations, subset="all")) == 6


def test_kinetics_clip_in_several_folders_takes_its_label_folder(kinetics):
    videos, annotations = kinetics
    # The CVDF names (val.csv, split "val") and the same clip flat and in two class folders.
    (annotations / "validate.csv").rename(annotations / "val.csv")
    _touch(videos, "val/air_drumming/xxxxxxxxxxx_000010_000020.mp4",
           "val/Passing American Football (In Game)/xxxxxxxxxxx_000010_000020.mp4")
    with pytest.warns(UserWarning):
        test = Kinetics(videos, annotations, subset="test")
    assert test[1].key == "val/Passing American Football (In Game)/xxxxxxxxxxx_000010_000020.mp4"
    (videos / "val").rename(videos / "validate")
    with pytest.warns(UserWarning):
        assert Kinetics(videos, annotations, subset="test")[0].key.startswith("validate/")


def test_kinetics_mmaction2_folders_and_clips_named_by_video(kinetics):
    videos, annotations = kinetics
    (videos / "train").rename(videos / "videos_train")
    (videos / "val").rename(videos / "videos_val")
    # Some copies name a clip by its YouTube video alone.
    (videos / "videos_val" / "---QUuC4vJs_000084_000094.mp4").rename(
        videos / "videos_val" / "---QUuC4vJs.mp4")
    with pytest.warns(UserWarning):
        every = Kinetics(videos, annotations, subset="all")
    assert len(every) == 6 and every[0].key.startswith("videos_train/passing_American")
    assert every[4].key == "videos_val/---QUuC4vJs.mp4" and every[4].label == 0


@pytest.mark.parametrize("csv_name, lines, message", [
    ("train.csv", ["label,youtube_id,time_start,split", "abseiling,x,1,train"],
     "train.csv: missing column 'time_end' (header 'label,youtube_id,time_start,split'; "
     "expected label,youtube_id,time_start,time_end,...)"),
    ("validate.csv", [K700_HEADER, "air drumming,---QUuC4vJs,84,94,validate",
                      "juggling balls,y,1,11,validate"],
     "validate.csv:3: unknown label 'juggling balls' (not in "),
    ("validate.csv", [K700_HEADER, "air drumming,---QUuC4vJs,84.5,94,validate"],
     "validate.csv:2: time_start '84.5' is not a whole number of seconds"),
    ("validate.csv", [K700_HEADER, "air drumming,---QUuC4vJs,84,nan,validate,extra"],
     "validate.csv:2: time_end 'nan' is not a whole number of seconds"),
    ("validate.csv", [K700_HEADER, ",---QUuC4vJs,84,94,validate"],
     "validate.csv:2: empty label or youtube_id"),
    ("validate.csv", [], "validate.csv: missing column 'label', 'youtube_id'"),
])
def test_kinetics_bad_csv_is_one_line_naming_the_file(kinetics, csv_name, lines, message):
    videos, annotations = kinetics
    _write(annotations / csv_name, *lines)
    with pytest.raises(PlayspeedError, match="^" + re.escape(str(annotations / csv_name))) as err:
        Kinetics(videos, annotations, subset="all")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_kinetics_files_not_where_expected(kinetics, tmp_path):
    videos, annotations = kinetics
    (annotations / "validate.csv").unlink()
    with pytest.raises(PlayspeedError, match=f"{annotations}: no validate.csv or val.csv here "
                                             r"\(the Kinetics annotation CSVs\)"):
        Kinetics(videos, annotations, subset="test")
    with pytest.raises(PlayspeedError, match="nowhere: annotation folder not found "
                                             r"\(expected Kinetics annotation CSVs in it\)"):
        Kinetics(videos, tmp_path / "nowhere")
    (videos / "train").rename(videos / "training")
    with pytest.raises(PlayspeedError, match=f"{videos}: no folder for the clips of train.csv "
                                             rf"\(expected {videos / 'train'}/ or "
                                             rf"{videos / 'videos_train'}/\)"):
        Kinetics(videos, annotations)
    with pytest.raises(PlayspeedError, match="has one official split; split must be 1"):
        build_records("kinetics", videos=videos, splits=annotations, split=2)


# --- Something-Something v2: labels.json and the split JSONs, <id>.webm ---


def _json(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


SSV2_LABELS = {"Pushing something from right to left": "1",
               "Pushing something from left to right": "0",
               "Putting something next to something": "2"}


def _ssv2_entry(video_id, template, *things):
    filled = template
    for thing in things:
        filled = filled.replace("[something]", thing, 1)
    return {"id": str(video_id), "label": filled.lower(), "template": template,
            "placeholders": list(things)}


@pytest.fixture
def ssv2(tmp_path):
    videos, annotations = tmp_path / "20bn-something-something-v2", tmp_path / "labels"
    _touch(videos, "78687.webm", "1.webm", "220847.webm", "5.webm", "9.webm")
    _json(annotations / "something-something-v2-labels.json", SSV2_LABELS)
    _json(annotations / "something-something-v2-train.json", [
        _ssv2_entry(78687, "Putting [something] next to [something]", "potato", "bottle"),
        _ssv2_entry(1, "Pushing [something] from left to right", "a pen"),
        # A template whose case differs from labels.json still finds its class.
        _ssv2_entry(220847, "Pushing [Something] from right to left", "a cup"),
        _ssv2_entry(404, "Pushing [something] from left to right", "a box")])
    _json(annotations / "something-something-v2-validation.json", [
        _ssv2_entry(5, "Pushing [something] from right to left", "keys"),
        _ssv2_entry(9, "Putting [something] next to [something]", "a mug", "a book")])
    _json(annotations / "something-something-v2-test.json", [{"id": "5"}])
    return videos, annotations


def test_ssv2_subsets_labels_and_missing(ssv2):
    videos, annotations = ssv2
    with pytest.warns(UserWarning, match="1 listed videos are missing"):
        train = SSv2(videos, annotations)
    assert train.classes == ["Pushing something from left to right",
                             "Pushing something from right to left",
                             "Putting something next to something"]
    assert [(r.key, r.label, r.group) for r in train] == [("78687.webm", 2, None),
                                                          ("1.webm", 0, None),
                                                          ("220847.webm", 1, None)]
    assert train.missing == [f"{annotations / 'something-something-v2-train.json'}: entry 3: "
                             f"video '404.webm' not found in {videos}"]
    test = SSv2(videos, annotations, subset="test")  # the validation JSON
    assert [(r.key, r.label) for r in test] == [("5.webm", 1), ("9.webm", 2)]
    with pytest.warns(UserWarning):
        assert len(build_records("ssv2", videos=videos, splits=annotations, subset="all")) == 5


def test_ssv2_reads_the_later_release_names(ssv2):
    videos, annotations = ssv2
    for part in ("labels", "train", "validation"):
        (annotations / f"something-something-v2-{part}.json").rename(annotations / f"{part}.json")
    assert [r.key for r in SSv2(videos, annotations, subset="test")] == ["5.webm", "9.webm"]


@pytest.mark.parametrize("name, payload, message", [
    ("something-something-v2-train.json", {"id": "1"},
     "train.json: expected a JSON list of videos, got a dict"),
    ("something-something-v2-validation.json", [_ssv2_entry(5, "Spinning [something]", "x")],
     "validation.json: entry 0 (id 5): unknown label 'Spinning something' (not in "),
    ("something-something-v2-validation.json", [{"id": "5", "label": "pushing"}],
     "validation.json: entry 0: expected an object with 'id' and 'template'"),
    ("something-something-v2-labels.json", ["Pushing something from left to right"],
     "labels.json: expected a JSON object mapping each template to its class index, got a list"),
    ("something-something-v2-labels.json", {"Pushing something": "0", "Putting something": "2"},
     "labels.json: class indices must run 0..1 without gaps"),
    ("something-something-v2-labels.json", {"Pushing something": "zero"},
     "labels.json: template 'Pushing something' has index 'zero'"),
])
def test_ssv2_bad_json_is_one_line_naming_the_file(ssv2, name, payload, message):
    videos, annotations = ssv2
    _json(annotations / name, payload)
    with pytest.raises(PlayspeedError, match="^" + re.escape(str(annotations / name))) as err:
        SSv2(videos, annotations, subset="all")
    assert message in str(err.value)


def test_ssv2_files_not_where_expected(ssv2, tmp_path):
    videos, annotations = ssv2
    (annotations / "something-something-v2-validation.json").write_text("[{")
    with pytest.raises(PlayspeedError, match="validation.json: not valid JSON"):
        SSv2(videos, annotations, subset="test")
    (annotations / "something-something-v2-labels.json").unlink()
    with pytest.raises(PlayspeedError, match=f"{annotations}: no something-something-v2-labels"
                                             r".json or labels.json here \(the SSv2 label JSON\)"):
        SSv2(videos, annotations)
    with pytest.raises(PlayspeedError, match="nowhere: videos folder not found"):
        SSv2(tmp_path / "nowhere", annotations)
