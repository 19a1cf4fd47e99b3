"""The camvid (SegNet layout) and ids (grey ids + YAML table) loaders on tiny fixtures in their layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semguard.cli import main
from semguard.data.check import check_dataset
from semguard.data.formats import FORMATS, open_dataset
from semguard.data.formats.camvid import CAMVID_MERGES, CAMVID_TO_TRAIN, parse_split_list
from semguard.data.mapping import IMAGE_WITHOUT_LABEL, UNEXPECTED_IDS, FrameProblem
from semguard.errors import ConfigError
from semguard.labels import NAME_TO_TRAIN_ID

H, W = 12, 16

# the documented mapping (docs/FORMATS.md), written out by name
EXPECTED = {0: "sky", 1: "building", 2: "pole", 3: "road", 4: "sidewalk", 5: "vegetation", 6: "traffic sign",
            7: "fence", 8: "car", 9: "person", 10: "rider"}


def rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def every_id() -> np.ndarray:
    """A grey label holding each CamVid id 0..11 in one row."""
    return np.repeat(np.arange(12, dtype=np.uint8), H * W // 12).reshape(H, W)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_camvid(root: Path, split: str = "train", names=("0001TP_006690", "0001TP_006720"), suffix: str = ".png",
                 list_lines: str | None = "segnet") -> Path:
    """A SegNet-layout split: frames in {split}/, grey ids in {split}annot/, and {split}.txt."""
    for i, name in enumerate(names):
        save(root / split / f"{name}{suffix}", rgb(i))
        save(root / f"{split}annot" / f"{name}.png", every_id())
    if list_lines == "segnet":
        (root / f"{split}.txt").write_text("".join(
            f"/SegNet/CamVid/{split}/{n}{suffix} /SegNet/CamVid/{split}annot/{n}.png\n" for n in names))
    return root


def test_every_camvid_id_maps_to_its_train_id_and_unlabelled_is_ignored(tmp_path):
    dataset = open_dataset(write_camvid(tmp_path), "camvid")
    assert dataset.names == ["0001TP_006690", "0001TP_006720"]
    label = dataset[0].label
    source = every_id()
    for camvid_id, name in EXPECTED.items():
        assert CAMVID_TO_TRAIN[camvid_id] == NAME_TO_TRAIN_ID[name]
        assert (label[source == camvid_id] == NAME_TO_TRAIN_ID[name]).all(), name
    assert (label[source == 11] == 255).all()
    assert dataset.ignore_report.ignored == {11: int((source == 11).sum())} and not dataset.ignore_report.unexpected
    assert CAMVID_MERGES[6] == (NAME_TO_TRAIN_ID["traffic sign"], NAME_TO_TRAIN_ID["traffic light"])
    assert CAMVID_MERGES[10] == (NAME_TO_TRAIN_ID["rider"], NAME_TO_TRAIN_ID["bicycle"])


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_png_and_jpg_frames_with_and_without_a_split_list(tmp_path, suffix):
    for list_lines in ("segnet", None):
        root = write_camvid(tmp_path / f"{list_lines}", suffix=suffix, list_lines=list_lines)
        dataset = open_dataset(root, "camvid", split="train")
        assert len(dataset) == 2 and dataset[1].image.shape == (H, W, 3)
        assert dataset.frames[0].image.endswith(suffix)


def test_split_list_naming_png_finds_reencoded_jpg_frames(tmp_path):
    root = write_camvid(tmp_path, suffix=".jpg", list_lines=None)
    (root / "train.txt").write_text("/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png\n")
    dataset = open_dataset(root, "camvid")
    assert dataset.names == ["0001TP_006690"] and dataset.frames[0].image.endswith(".jpg")   # the list decides the frames


def test_split_list_line_forms(tmp_path):
    (tmp_path / "val.txt").write_text(
        "# a comment\n\n/SegNet/CamVid/val/a.png /SegNet/CamVid/valannot/a.png\n"
        "val/b.jpg valannot/b.png\r\nc.png\n  val/d.jpg   # image only\n")
    entries = parse_split_list(tmp_path / "val.txt", tmp_path, "val")
    assert [(n, i.relative_to(tmp_path).as_posix(), l.relative_to(tmp_path).as_posix()) for n, i, l in entries] == [
        (3, "val/a.png", "valannot/a.png"), (4, "val/b.jpg", "valannot/b.png"), (5, "val/c.png", "valannot/c.png"),
        (6, "val/d.jpg", "valannot/d.png")]
    (tmp_path / "val.txt").write_text("val/a.png valannot/a.png extra\n")
    with pytest.raises(FrameProblem, match=r"val.txt line 1: expected 'IMAGE \[ANNOTATION\]'"):
        parse_split_list(tmp_path / "val.txt", tmp_path, "val")


def test_a_missing_annotation_is_named(tmp_path):
    root = write_camvid(tmp_path)
    (root / "trainannot" / "0001TP_006720.png").unlink()
    with pytest.raises(FrameProblem, match=r"trainannot/0001TP_006720\.png: missing annotation of the frame") as err:
        open_dataset(root, "camvid")
    assert err.value.kind == IMAGE_WITHOUT_LABEL
    unlabelled = open_dataset(root, "camvid", labels_required=False)           # an unlabelled split still loads
    assert (unlabelled[1].label == 255).all()
    report = check_dataset(root, "camvid")
    assert [(p.kind, Path(p.path).name) for p in report.problems] == [(IMAGE_WITHOUT_LABEL, "0001TP_006720.png")]
    (root / "train.txt").unlink()                                              # the same without a list
    with pytest.raises(FrameProblem, match=r"trainannot/0001TP_006720\.png: missing annotation"):
        open_dataset(root, "camvid")


def test_bad_split_list_entries_and_options_are_refused(tmp_path):
    root = write_camvid(tmp_path)
    with open(root / "train.txt", "a") as f:
        f.write("/SegNet/CamVid/train/nowhere.png /SegNet/CamVid/trainannot/nowhere.png\n")
    with pytest.raises(FrameProblem, match=r"train.txt line 3: neither the frame .*nowhere.png"):
        open_dataset(root, "camvid")
    with pytest.raises(ConfigError, match="valid values: train, val, test"):
        open_dataset(root, "camvid", split="validation")
    with pytest.raises(FrameProblem, match="splits present: train"):
        open_dataset(root, "camvid", split="val")
    with pytest.raises(FrameProblem, match="option list"):
        open_dataset(root, "camvid", list="other.txt")
    (root / "mine.txt").write_text("train/0001TP_006720.png\n")
    assert open_dataset(root, "camvid", list="mine.txt").names == ["0001TP_006720"]


def test_unknown_camvid_ids_are_refused_under_strict_and_listed_by_the_check(tmp_path):
    root = write_camvid(tmp_path)
    label = every_id()
    label[0, 0] = 12
    save(root / "trainannot" / "0001TP_006690.png", label)
    with pytest.raises(FrameProblem, match=r"0001TP_006690\.png: unexpected CamVid class id\(s\) 12"):
        open_dataset(root, "camvid", strict=True)[0]
    assert [p.kind for p in check_dataset(root, "camvid").problems] == [UNEXPECTED_IDS]
    save(root / "trainannot" / "0001TP_006690.png", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(FrameProblem, match="single-channel class ids"):
        open_dataset(root, "camvid")[0]


def test_data_check_runs_through_the_cli(tmp_path, capsys):
    root = write_camvid(tmp_path / "camvid", split="val", suffix=".jpg")
    assert main(["data", "check", str(root), "--format", "camvid", "--option", "split=val"]) == 0
    assert "usable, 2/2 frames checked" in capsys.readouterr().out
    (root / "valannot" / "0001TP_006690.png").unlink()
    assert main(["data", "check", str(root), "--format", "camvid", "--option", "split=val"]) == 1
    assert main(["data", "stats", str(root), "--format", "camvid", "--option", "split=val"]) == 2   # --out needed
    save(root / "valannot" / "0001TP_006690.png", every_id())
    out = tmp_path / "stats.png"
    assert main(["data", "stats", str(root), "--format", "camvid", "--option", "split=val", "--out", str(out)]) == 0
    assert "traffic sign" in capsys.readouterr().out and out.is_file()
    preview = tmp_path / "preview.png"
    assert main(["data", "preview", str(root), "--format", "camvid", "--option", "split=val", "--out", str(preview),
                 "--n", "2", "--scale", "1"]) == 0
    assert Image.open(preview).size[0] >= 2 * W


# ----------------------------------------------------------------------------- ids


def write_ids_set(root: Path, table_text: str) -> Path:
    save(root / "data" / "images" / "a.jpg", rgb())
    save(root / "data" / "labels" / "a.png", every_id())
    table = root / "ids.yaml"
    table.write_text(table_text)
    return table


CAMVID_TABLE = "ids:\n" + "".join(f"  - {{id: {i}, train_id: {name}}}\n" for i, name in EXPECTED.items()) + \
               "  - {id: 11, train_id: ignore, name: Unlabelled}\n"


def test_ids_format_maps_through_the_yaml_table(tmp_path):
    table = write_ids_set(tmp_path, CAMVID_TABLE.replace("train_id: sky", "train_id: 10"))
    dataset = open_dataset(tmp_path / "data", "ids", table=str(table))
    label, source = dataset[0].label, every_id()
    for camvid_id, name in EXPECTED.items():
        assert (label[source == camvid_id] == NAME_TO_TRAIN_ID[name]).all(), name
    assert (label[source == 11] == 255).all()
    assert dataset.ignore_report.ignored == {11: int((source == 11).sum())}
    assert dataset.id_names[11] == "Unlabelled"
    assert check_dataset(tmp_path / "data", "ids", table=str(table)).usable
    assert main(["data", "check", str(tmp_path / "data"), "--format", "ids", "--option", f"table={table}"]) == 0


def test_ids_format_refuses_ids_missing_from_the_table(tmp_path):
    table = write_ids_set(tmp_path, CAMVID_TABLE.replace("  - {id: 7, train_id: fence}\n", ""))
    label_path = tmp_path / "data" / "labels" / "a.png"
    with pytest.raises(FrameProblem, match=rf"{label_path}: unexpected id\(s\) 7 "):
        open_dataset(tmp_path / "data", "ids", table=str(table), strict=True)[0]
    report = check_dataset(tmp_path / "data", "ids", table=str(table))
    assert [(p.kind, p.path) for p in report.problems] == [(UNEXPECTED_IDS, str(label_path))]
    assert "7 (" in report.problems[0].detail


def test_ids_format_reads_16_bit_ids(tmp_path):
    table = write_ids_set(tmp_path, "ids:\n  - {id: 1000, train_id: car}\n  - {id: 0, train_id: road}\n")
    label = np.zeros((H, W), np.uint16)
    label[:, :4] = 1000
    Image.fromarray(label).save(tmp_path / "data" / "labels" / "a.png")
    out = open_dataset(tmp_path / "data", "ids", table=str(table))[0].label
    assert (out[:, :4] == 13).all() and (out[:, 4:] == 0).all()


@pytest.mark.parametrize("text, match", [
    (None, "does not exist"),
    ("ids: [", "YAML"),
    ("classes:\n  - {id: 1, train_id: road}\n", "unknown top-level key.*classes; valid key: ids"),
    ("ids: []\n", "top-level 'ids' list"),
    ("ids:\n  - {id: 1}\n", r"ids\[0\] must have keys id and train_id"),
    ("ids:\n  - {id: 1, train_id: road, colour: red}\n", r"ids\[0\]: unknown key\(s\) colour; valid keys: id, train_id, name"),
    ("ids:\n  - {id: -1, train_id: road}\n", r"ids\[0\]: id must be an integer 0..65535, got -1"),
    ("ids:\n  - {id: 1, train_id: road}\n  - {id: 1, train_id: sky}\n", r"ids\[1\]: id 1 is listed twice"),
    ("ids:\n  - {id: 1, train_id: raod}\n", r"ids\[0\]: train_id 'raod' is not a train id"),
    ("ids:\n  - {id: 1, train_id: 19}\n", r"ids\[0\]: train_id 19"),
])
def test_bad_id_tables_name_the_file_and_key(tmp_path, text, match):
    table = write_ids_set(tmp_path, text or "")
    if text is None:
        table.unlink()
    with pytest.raises(ConfigError, match=match) as err:
        open_dataset(tmp_path / "data", "ids", table=str(table))
    assert str(table) in str(err.value)


def test_ids_needs_its_table_and_both_formats_are_registered(tmp_path):
    write_ids_set(tmp_path, CAMVID_TABLE)
    with pytest.raises(ConfigError, match="needs the option 'table'"):
        open_dataset(tmp_path / "data", "ids")
    assert {"camvid", "ids"} <= set(FORMATS)
