"""Format loaders on tiny fixtures written in each data set's genuine on-disk format."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semguard.data.formats import FORMATS, open_dataset
from semguard.data.mapping import FrameProblem
from semguard.data.sample import Box, Sample
from semguard.errors import ConfigError, DataError

H, W = 16, 24


def rgb(seed: int = 0, size=(H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def png_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpg_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- folder


def test_folder_reads_semguard_folder_and_reports_bad_ids(tmp_path):
    from semguard.data.folder import write_sample

    label = np.zeros((H, W), np.uint8)
    label[:, 12:] = 13
    instances = np.zeros((H, W), np.int32)
    instances[2:6, 14:20] = 1
    sample = Sample(rgb(), label, instances, [Box((14, 2, 20, 6), 13, 1)], name="a/b")
    write_sample(tmp_path, sample)
    dataset = open_dataset(tmp_path, "folder")
    assert dataset.names == ["a/b"]
    loaded = dataset[0]
    np.testing.assert_array_equal(loaded.label, label)
    assert loaded.boxes[0].xyxy == (14, 2, 20, 6) and loaded.boxes[0].instance_id == 1
    # an id outside 0..18/255 goes to ignore and is reported; strict refuses it
    label[0, 0] = 40
    save(tmp_path / "labels" / "a" / "b.png", label)
    assert open_dataset(tmp_path, "folder")[0].label[0, 0] == 255
    dataset = open_dataset(tmp_path, "folder")
    dataset[0]
    assert dataset.ignore_report.unexpected[40] == 1
    with pytest.raises(DataError, match="40"):
        open_dataset(tmp_path, "folder", strict=True)[0]


# ----------------------------------------------------------------------------- Cityscapes


def write_cityscapes(root: Path, split="train", city="aachen", stem="aachen_000000_000019"):
    label_ids = np.full((H, W), 7, np.uint8)       # road
    label_ids[:4] = 23                             # sky
    label_ids[4:8, :6] = 0                         # unlabeled -> ignore
    label_ids[10:14, 2:6] = 26                     # car instance
    label_ids[10:16, 10:13] = 24                   # person instance
    label_ids[12:14, 18:22] = 26                   # car crowd (no instance)
    instance_ids = label_ids.astype(np.uint16)
    instance_ids[10:14, 2:6] = 26000
    instance_ids[10:16, 10:13] = 24001
    save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb())
    save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)
    Image.fromarray(instance_ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png")
    return label_ids


def test_cityscapes_maps_label_ids_and_derives_instance_boxes(tmp_path):
    write_cityscapes(tmp_path)
    assert Image.open(next(tmp_path.rglob("*instanceIds.png"))).mode.startswith("I")  # genuinely 16-bit
    dataset = open_dataset(tmp_path, "cityscapes", split="train")
    assert dataset.names == ["aachen/aachen_000000_000019"]
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[15, 20] == 0 and sample.label[5, 0] == 255
    assert sample.label[11, 3] == 13 and sample.label[11, 11] == 11
    boxes = sorted(sample.boxes, key=lambda b: b.class_id)
    assert [(b.class_id, b.xyxy) for b in boxes] == [(11, (10, 10, 13, 16)), (13, (2, 10, 6, 14))]
    for box in boxes:  # instance ids match the instance map, tight half-open
        ys, xs = np.nonzero(sample.instances == box.instance_id)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box.xyxy
    assert dataset.ignore_report.ignored[0] == 24
    assert not dataset.ignore_report.unexpected


def test_cityscapes_unexpected_id_strict_names_file_and_id(tmp_path):
    label_ids = write_cityscapes(tmp_path)
    label_ids[0, 0] = 99
    path = save(next(tmp_path.rglob("*labelIds.png")), label_ids)
    assert open_dataset(tmp_path, "cityscapes")[0].label[0, 0] == 255
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path, "cityscapes", strict=True)[0]
    assert str(path) in str(err.value) and "99" in str(err.value)


# ----------------------------------------------------------------------------- GTA5


def write_gta5(root: Path, name="00001", label_size=(H, W)):
    indices = np.full(label_size, 7, np.uint8)
    indices[:3] = 23
    indices[3:5] = 1          # ego vehicle -> ignore
    label = Image.fromarray(indices, mode="P")
    palette = [0] * 768
    palette[7 * 3: 7 * 3 + 3] = [128, 64, 128]   # road colour: indices != colours
    palette[23 * 3: 23 * 3 + 3] = [70, 130, 180]
    label.putpalette(palette)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    label.save(root / "labels" / f"{name}.png")
    save(root / "images" / f"{name}.png", rgb())


def test_gta5_reads_palette_indices(tmp_path):
    write_gta5(tmp_path)
    assert Image.open(tmp_path / "labels" / "00001.png").mode == "P"
    dataset = open_dataset(tmp_path, "gta5")
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[10, 0] == 0 and sample.label[3, 0] == 255
    assert sample.instances is None and sample.boxes == []
    assert dataset.ignore_report.ignored[1] == 2 * W


def test_gta5_size_mismatch_names_the_frame(tmp_path):
    write_gta5(tmp_path, label_size=(H, W - 2))
    with pytest.raises(FrameProblem, match="00001.png") as err:
        open_dataset(tmp_path, "gta5")[0]
    assert err.value.kind == "size mismatch"


# ----------------------------------------------------------------------------- SHIFT


def write_shift(root: Path, zipped=True, seq="0a1b-2c3d", boxes=True):
    folder = root / "discrete" / "images" / "train" / "front"
    folder.mkdir(parents=True)
    semseg = np.zeros((H, W, 3), np.uint8)
    semseg[..., 0] = 7            # road
    semseg[:4, :, 0] = 13         # sky
    semseg[4:6, :, 0] = 3         # other -> ignore
    semseg[10:14, 2:8, 0] = 10    # vehicle
    semseg[..., 1] = 77           # G channel noise must not matter
    files = {"img": (f"{seq}/00000010_img_front.jpg", jpg_bytes(rgb())),
             "semseg": (f"{seq}/00000010_semseg_front.png", png_bytes(semseg))}
    for group, (member, data) in files.items():
        if zipped:
            with zipfile.ZipFile(folder / f"{group}.zip", "w") as archive:
                archive.writestr(member, data)
        else:
            (folder / group / member).parent.mkdir(parents=True, exist_ok=True)
            (folder / group / member).write_bytes(data)
    if boxes:
        det = {"frames": [{"name": "00000010_img_front.jpg", "videoName": seq, "labels": [
            {"id": "1", "category": "car", "attributes": {"occluded": False}, "box2d": {"x1": 2, "y1": 10, "x2": 7, "y2": 13}},
            {"id": "2", "category": "tram", "box2d": {"x1": 0, "y1": 0, "x2": 1, "y2": 1}},
        ]}]}
        (folder / "det_2d.json").write_text(json.dumps(det))
    return folder


@pytest.mark.parametrize("zipped", [True, False])
def test_shift_zip_or_extracted(tmp_path, zipped):
    write_shift(tmp_path, zipped=zipped)
    dataset = open_dataset(tmp_path, "shift")
    assert dataset.names == ["0a1b-2c3d/00000010_front"]
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[15, 20] == 0 and sample.label[11, 3] == 13
    assert sample.label[4, 0] == 255
    assert [(b.class_id, b.xyxy) for b in sample.boxes] == [(13, (2, 10, 8, 14))]   # inclusive -> half-open
    assert sample.boxes[0].attributes == {"occluded": "false"}
    assert dataset.ignore_report.ignored[3] == 2 * W
    assert dataset.ignore_report.dropped_boxes["tram"] == 1
    with pytest.raises(DataError, match="tram"):
        open_dataset(tmp_path, "shift", strict=True)[0]


def test_shift_truncated_zip_member_is_unreadable(tmp_path):
    folder = write_shift(tmp_path, boxes=False)
    member = "0a1b-2c3d/00000010_img_front.jpg"
    with zipfile.ZipFile(folder / "img.zip", "w") as archive:
        archive.writestr(member, jpg_bytes(rgb())[:200])
    with pytest.raises(FrameProblem, match="img.zip") as err:
        open_dataset(tmp_path, "shift")[0]
    assert err.value.kind == "unreadable file"


# ----------------------------------------------------------------------------- CARLA


def write_carla(root: Path, tags: np.ndarray):
    semantic = np.zeros((H, W, 3), np.uint8)
    semantic[..., 0] = tags
    save(root / "images" / "f1.png", rgb())
    save(root / "labels" / "f1.png", semantic)


def test_carla_version_is_required_and_selects_the_table(tmp_path):
    tags = np.full((H, W), 7, np.uint8)
    tags[:4] = 24
    write_carla(tmp_path, tags)
    with pytest.raises(ConfigError, match="version"):
        open_dataset(tmp_path, "carla")
    with pytest.raises(ConfigError, match="legacy"):
        open_dataset(tmp_path, "carla", version="0.9.13")
    legacy = open_dataset(tmp_path, "carla", version="legacy")
    new = open_dataset(tmp_path, "carla", version="0.9.14")
    # tag 7: road in legacy, traffic light (train id 6) in 0.9.14; tag 24: unknown in legacy, road line in 0.9.14
    assert legacy[0].label[10, 0] == 0 and new[0].label[10, 0] == 6
    assert legacy[0].label[0, 0] == 255 and new[0].label[0, 0] == 0
    assert legacy.ignore_report.unexpected[24] == 2 * 4 * W  # the frame was read twice
    with pytest.raises(DataError, match="24"):
        open_dataset(tmp_path, "carla", version="legacy", strict=True)[0]


def test_carla_with_coco_boxes(tmp_path):
    write_carla(tmp_path, np.full((H, W), 1, np.uint8))
    coco = {"images": [{"id": 5, "file_name": "f1.png", "width": W, "height": H}],
            "annotations": [{"image_id": 5, "category_id": 3, "bbox": [1.0, 2.0, 4.0, 5.0]},
                            {"image_id": 5, "category_id": 9, "bbox": [0, 0, 2, 2]}],
            "categories": [{"id": 3, "name": "traffic light"}, {"id": 9, "name": "kite"}]}
    (tmp_path / "boxes.json").write_text(json.dumps(coco))
    dataset = open_dataset(tmp_path, "carla", version="0.9.14")
    assert [(b.class_id, b.xyxy) for b in dataset[0].boxes] == [(6, (1, 2, 5, 7))]
    assert dataset.ignore_report.dropped_boxes["kite"] == 1


# ----------------------------------------------------------------------------- VKITTI2


def write_vkitti2(root: Path):
    scene = root / "Scene01" / "clone"
    colors = {"Terrain": (210, 0, 200), "Sky": (90, 200, 255), "Road": (100, 60, 100), "Car": (255, 127, 80),
              "Misc": (80, 80, 80), "Undefined": (0, 0, 0)}
    scene.mkdir(parents=True)
    (scene / "colors.txt").write_text("Category r g b\n" + "".join(f"{k} {r} {g} {b}\n" for k, (r, g, b) in colors.items()))
    classgt = np.zeros((H, W, 3), np.uint8)
    classgt[:] = colors["Road"]
    classgt[:4] = colors["Sky"]
    classgt[4:6] = colors["Misc"]
    classgt[10:14, 2:8] = colors["Car"]
    save(scene / "frames" / "classSegmentation" / "Camera_0" / "classgt_00000.png", classgt)
    path = scene / "frames" / "rgb" / "Camera_0" / "rgb_00000.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(jpg_bytes(rgb()))
    (scene / "bbox.txt").write_text(
        "frame cameraID trackID left right top bottom number_pixels truncation_ratio occupancy_ratio isMoving\n"
        "0 0 0 2 7 10 13 24 0 1 False\n0 1 0 3 9 10 13 24 0 1 False\n1 0 0 2 7 10 13 24 0 1 False\n")
    (scene / "info.txt").write_text("trackID label model color\n0 Car Sedan4Door Black\n")
    return scene, classgt


def test_vkitti2_colors_and_bbox_txt(tmp_path):
    write_vkitti2(tmp_path)
    dataset = open_dataset(tmp_path, "vkitti2")
    assert dataset.names == ["Scene01/clone/Camera_0/00000"]
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[15, 0] == 0 and sample.label[11, 3] == 13
    assert sample.label[4, 0] == 255
    assert [(b.class_id, b.xyxy) for b in sample.boxes] == [(13, (2, 10, 8, 14))]
    assert dataset.ignore_report.ignored["Misc"] == 2 * W


def test_vkitti2_unknown_colour(tmp_path):
    scene, classgt = write_vkitti2(tmp_path)
    classgt[0, 0] = (1, 2, 3)
    save(scene / "frames" / "classSegmentation" / "Camera_0" / "classgt_00000.png", classgt)
    dataset = open_dataset(tmp_path, "vkitti2")
    assert dataset[0].label[0, 0] == 255
    assert dataset.ignore_report.unexpected["rgb(1,2,3)"] == 1
    with pytest.raises(DataError, match=r"rgb\(1,2,3\)"):
        open_dataset(tmp_path, "vkitti2", strict=True)[0]


# ----------------------------------------------------------------------------- BDD100K


def write_bdd(root: Path, split="val"):
    mask = np.zeros((H, W), np.uint8)
    mask[:4] = 10
    mask[4:6] = 255
    (root / "images" / "10k" / split).mkdir(parents=True)
    (root / "images" / "10k" / split / "b1c66a42-6f7d68ca.jpg").write_bytes(jpg_bytes(rgb()))
    save(root / "labels" / "sem_seg" / "masks" / split / "b1c66a42-6f7d68ca.png", mask)
    det = [{"name": "b1c66a42-6f7d68ca.jpg", "labels": [
        {"id": "1", "category": "traffic light", "attributes": {"trafficLightColor": "G", "occluded": False},
         "box2d": {"x1": 3.0, "y1": 1.0, "x2": 4.0, "y2": 5.0}},
        {"id": "2", "category": "car", "attributes": {"trafficLightColor": "NA"},
         "box2d": {"x1": 10.0, "y1": 8.0, "x2": 15.0, "y2": 12.0}},
        {"id": "3", "category": "other vehicle", "box2d": {"x1": 0, "y1": 0, "x2": 2, "y2": 2}}]}]
    (root / "labels" / "det_20").mkdir(parents=True)
    (root / "labels" / "det_20" / f"det_{split}.json").write_text(json.dumps(det))


def test_bdd100k_masks_and_inclusive_boxes(tmp_path):
    write_bdd(tmp_path)
    dataset = open_dataset(tmp_path, "bdd100k", split="val", strict=True)
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[10, 0] == 0 and sample.label[4, 0] == 255
    light, car = sample.boxes
    assert light.xyxy == (3, 1, 5, 6) and light.class_id == 6 and light.attributes["state"] == "green"
    assert car.xyxy == (10, 8, 16, 13) and car.class_id == 13 and "state" not in car.attributes
    assert dataset.ignore_report.dropped_boxes["other vehicle"] == 1
    assert dataset.ignore_report.ignored[255] == 0  # 255 in a train-id mask already is ignore: nothing was sent there


# ----------------------------------------------------------------------------- Synscapes


def test_synscapes_class_instance_meta(tmp_path):
    classes = np.full((H, W), 7, np.uint8)
    classes[8:12, 4:10] = 26
    instances = np.zeros((H, W), np.uint16)
    instances[8:12, 4:10] = 3
    save(tmp_path / "img" / "rgb" / "1.png", rgb())
    save(tmp_path / "img" / "class" / "1.png", classes)
    save(tmp_path / "img" / "instance" / "1.png", instances)
    meta = {"instance": {"bbox2d": {"3": {"xmin": 4 / W, "ymin": 8 / H, "xmax": 10 / W, "ymax": 12 / H},
                                    "4": {"xmin": 0.0, "ymin": 0.0, "xmax": 0.1, "ymax": 0.1}},
                         "class": {"3": 26, "4": 29}}}
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "1.json").write_text(json.dumps(meta))
    dataset = open_dataset(tmp_path, "synscapes")
    sample = dataset[0]
    assert sample.label[0, 0] == 0 and sample.label[9, 5] == 13
    assert [(b.class_id, b.xyxy, b.instance_id) for b in sample.boxes] == [(13, (4, 8, 10, 12), 3)]
    assert dataset.ignore_report.dropped_boxes["caravan"] == 1


def test_synscapes_meta_with_wrong_keys(tmp_path):
    save(tmp_path / "img" / "rgb" / "1.png", rgb())
    save(tmp_path / "img" / "class" / "1.png", np.full((H, W), 7, np.uint8))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "1.json").write_text(json.dumps({"boxes": []}))
    with pytest.raises(DataError, match="bbox2d"):
        open_dataset(tmp_path, "synscapes")[0]


# ----------------------------------------------------------------------------- SYNTHIA


def test_synthia_16bit_multichannel(tmp_path):
    import cv2

    labels = np.zeros((H, W, 3), np.uint16)           # OpenCV order: B, G, R
    labels[..., 2] = 3                                # road (class in R, the first channel on disk)
    labels[:4, :, 2] = 1                              # sky
    labels[4:6, :, 2] = 13                            # parking-slot -> ignore
    labels[10:14, 2:8, 2] = 8                         # car
    labels[10:14, 2:8, 1] = 700                       # instance id in G (16-bit)
    labels[..., 0] = 999                              # B: unrelated
    (tmp_path / "GT" / "LABELS").mkdir(parents=True)
    assert cv2.imwrite(str(tmp_path / "GT" / "LABELS" / "0000001.png"), labels)
    save(tmp_path / "RGB" / "0000001.png", rgb())
    dataset = open_dataset(tmp_path, "synthia")
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[15, 0] == 0 and sample.label[4, 0] == 255
    assert sample.label[11, 3] == 13
    assert [(b.class_id, b.xyxy) for b in sample.boxes] == [(13, (2, 10, 8, 14))]
    assert dataset.ignore_report.ignored[13] == 2 * W


# ----------------------------------------------------------------------------- palette


def test_palette_yaml_table(tmp_path):
    table = tmp_path / "morai.yaml"
    table.write_text("classes:\n  - {color: [10, 20, 30], train_id: road}\n  - {color: [1, 1, 1], train_id: 10}\n"
                     "  - {color: [0, 0, 0], train_id: ignore, name: unlabeled}\n")
    colour = np.zeros((H, W, 3), np.uint8)
    colour[:] = (10, 20, 30)
    colour[:4] = (1, 1, 1)
    colour[4:6] = (0, 0, 0)
    colour[6, 0] = (9, 9, 9)
    save(tmp_path / "data" / "images" / "x.png", rgb())
    save(tmp_path / "data" / "labels" / "x.png", colour)
    dataset = open_dataset(tmp_path / "data", "palette", table=str(table))
    sample = dataset[0]
    assert sample.label[0, 0] == 10 and sample.label[10, 0] == 0 and sample.label[4, 0] == 255
    assert dataset.ignore_report.ignored["unlabeled"] == 2 * W
    assert dataset.ignore_report.unexpected["rgb(9,9,9)"] == 1
    with pytest.raises(ConfigError, match="table"):
        open_dataset(tmp_path / "data", "palette")
    table.write_text("classes:\n  - {color: [10, 20], train_id: road}\n")
    with pytest.raises(ConfigError, match=r"classes\[0\]"):
        open_dataset(tmp_path / "data", "palette", table=str(table))


# ----------------------------------------------------------------------------- coco, registry


def test_coco_box_set_and_registry(tmp_path):
    save(tmp_path / "images" / "a.png", rgb())
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [2, 3, 4, 5]}],
            "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    sample = open_dataset(tmp_path, "coco")[0]
    assert (sample.label == 255).all()
    assert [(b.class_id, b.xyxy) for b in sample.boxes] == [(11, (2, 3, 6, 8))]
    coco["annotations"][0]["image_id"] = 7
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(DataError, match="image_id 7"):
        open_dataset(tmp_path, "coco")
    with pytest.raises(ConfigError, match="valid formats"):
        open_dataset(tmp_path, "kitti")
    with pytest.raises(ConfigError, match="valid options"):
        open_dataset(tmp_path, "gta5", split="train")
    assert {"folder", "cityscapes", "gta5", "shift", "carla", "vkitti2", "bdd100k", "synscapes", "synthia",
            "palette"} <= set(FORMATS)


# ----------------------------------------------------------------------------- bad input (loader side)


def test_orphans_and_empty_sets_are_refused(tmp_path):
    write_gta5(tmp_path)
    save(tmp_path / "images" / "00002.png", rgb())
    with pytest.raises(FrameProblem, match="00002.png") as err:
        open_dataset(tmp_path, "gta5")
    assert err.value.kind == "image without label"
    unlabelled = open_dataset(tmp_path, "gta5", labels_required=False)
    assert unlabelled.names == ["00001", "00002"] and (unlabelled[1].label == 255).all()
    (tmp_path / "images" / "00002.png").unlink()
    (tmp_path / "images" / "00001.png").unlink()
    with pytest.raises(FrameProblem) as err:
        open_dataset(tmp_path, "gta5")
    assert err.value.kind in ("label without image", "empty set")
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="empty"):
        open_dataset(empty, "gta5")
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nowhere", "gta5")


def test_truncated_png_is_unreadable(tmp_path):
    write_gta5(tmp_path)
    path = tmp_path / "images" / "00001.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(FrameProblem, match="truncated") as err:
        open_dataset(tmp_path, "gta5")[0]
    assert err.value.kind == "unreadable file"
