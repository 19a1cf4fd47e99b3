"""`semguard export` (ONNX, verified with onnxruntime) and the numpy-only conditioning builder.

Tiny generators (4 channels, one block, size multiple 4) on 32x64 frames. The ONNX
graphs are compared with the PyTorch path semguard itself translates with
(Translator.translate_batch); the numpy builder with semguard.models.conditioning.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

EXPORT_PACKAGES = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript"))
needs_export_extra = pytest.mark.skipif(not EXPORT_PACKAGES, reason="pip install semguard[export]")

from semguard import __version__  # noqa: E402
from semguard.cli import main  # noqa: E402
from semguard.config import config_from_dict  # noqa: E402
from semguard.data.batch import collate_samples  # noqa: E402
from semguard.data.formats.base import boxes_from_instances  # noqa: E402
from semguard.data.sample import Box, Sample  # noqa: E402
from semguard.errors import SemguardError  # noqa: E402
from semguard.export import onnx_export  # noqa: E402
from semguard.export.onnx_export import DEFAULT_TOLERANCE, contract_path_for, export_onnx  # noqa: E402
from semguard.labels import BOX_CLASSES, IGNORE_ID, NUM_CLASSES, TRAIN_ID_NAMES  # noqa: E402
from semguard.models import build_generator  # noqa: E402
from semguard.models.conditioning import ConditioningSpec, build_conditioning  # noqa: E402
from semguard.checkpoints import save_translator  # noqa: E402
from semguard.common import file_sha256  # noqa: E402
from semguard.translate import Translator  # noqa: E402

BUILDER_FILE = Path(__file__).resolve().parents[1] / "semguard" / "export" / "conditioning_np.py"


def _load_builder_by_path():
    """conditioning_np loaded from its file alone, the way a simulator plugin would."""
    spec = importlib.util.spec_from_file_location("conditioning_np_standalone", BUILDER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conditioning_np = _load_builder_by_path()


def _make_checkpoint(path: Path, generator: str) -> Path:
    config = config_from_dict({"model": {"generator": generator, "base_channels": 4, "n_blocks": 1,
                                         "n_downsample": 2}})
    torch.manual_seed(0)
    model, _ = build_generator(config.model)
    state = model.state_dict()
    save_translator(path, config, model, generator_ema=state, step=7)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: _make_checkpoint(root / f"{name}.pt", name) for name in ("spade", "resnet")}


@pytest.fixture(scope="module")
def dynamic_exports(checkpoints, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dynamic")
    out = {}
    for name, checkpoint in checkpoints.items():
        translator = Translator.from_checkpoint(checkpoint, device="cpu", tile=None)
        out[name] = export_onnx(translator, root / f"{name}.onnx", size=None).path
    return out


def _frame(seed: int, size=(32, 64)) -> Sample:
    """A frame with a blocky label map, ignore pixels, instances and boxes derived from them."""
    frame = onnx_export.verification_frame(seed, *size)
    instances, boxes = boxes_from_instances(frame["instances"], frame["label"])
    boxes.append(Box((3.2, 4.1, 3.6, 4.3), 7))  # sub-pixel sign
    return Sample(image=frame["image"], label=frame["label"], instances=instances, boxes=boxes)


def _onnx_translate(path: Path, samples: list[Sample]) -> np.ndarray:
    """Translate equally sized frames with onnxruntime; conditioning from the numpy builder."""
    contract = json.loads(contract_path_for(path).read_text())
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = np.stack([s.image for s in samples]).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    feed = {"image": image}
    conditions = [conditioning_np.build_conditioning_for(
        contract, s.label, s.instances, [{"xyxy": b.xyxy, "class_id": b.class_id} for b in s.boxes]) for s in samples]
    if conditions[0] is not None:
        feed["condition"] = np.stack(conditions)
    assert [i.name for i in session.get_inputs()] == list(feed)
    return session.run(["translated"], feed)[0]


def _pytorch_translate(checkpoint: Path, samples: list[Sample]) -> np.ndarray:
    translator = Translator.from_checkpoint(checkpoint, device="cpu", tile=None)
    return translator.translate_batch(collate_samples(samples)).numpy()


# ------------------------------------------------------------------ export == PyTorch


@needs_export_extra
@pytest.mark.parametrize("generator", ["spade", "resnet"])
def test_static_export_matches_pytorch_and_states_its_contract(generator, checkpoints, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code = main(["export", "--checkpoint", str(checkpoints[generator]), "--out", str(out),
                 "--height", "32", "--width", "64", "--verify-frames", "2"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]  # no temporaries
    contract = json.loads(contract_path_for(out).read_text())
    assert contract["semguard_version"] == __version__
    assert contract["checkpoint"]["sha256"] == file_sha256(checkpoints[generator])
    assert contract["checkpoint"]["weights"] == "generator_ema"
    assert contract["onnx_sha256"] == file_sha256(out)
    assert contract["size"] == {**contract["size"], "dynamic": False, "height": 32, "width": 64, "size_multiple": 4}
    assert contract["inputs"][0]["range"] == [-1.0, 1.0] and contract["inputs"][0]["layout"] == "NCHW"
    assert contract["verification"]["max_abs_diff"] <= contract["verification"]["tolerance"] == DEFAULT_TOLERANCE
    if generator == "spade":
        spec = ConditioningSpec()
        assert [i["name"] for i in contract["inputs"]] == ["image", "condition"]
        assert contract["inputs"][1]["channel_names"] == spec.channel_names()
        assert contract["conditioning"]["channels"] == spec.channels == 29
    else:  # unconditioned baseline: image only
        assert [i["name"] for i in contract["inputs"]] == ["image"]
        assert contract["conditioning"]["channels"] == 0
    wrong = onnx_export.verification_frame(3, 40, 64)
    with pytest.raises(ValueError, match="takes 32x64 frames"):
        conditioning_np.graph_inputs(contract, wrong["image"], wrong["label"])
    samples = [_frame(11)]
    difference = np.abs(_onnx_translate(out, samples) - _pytorch_translate(checkpoints[generator], samples)).max()
    assert difference <= DEFAULT_TOLERANCE


@needs_export_extra
@pytest.mark.parametrize("generator", ["spade", "resnet"])
def test_dynamic_export_matches_pytorch_at_two_sizes_and_batch_sizes(generator, checkpoints, dynamic_exports):
    contract = json.loads(contract_path_for(dynamic_exports[generator]).read_text())
    assert contract["size"]["dynamic"] and contract["inputs"][0]["shape"] == ["batch", 3, "height", "width"]
    for size, batch in [((32, 64), 2), ((48, 96), 1), ((64, 32), 1)]:
        samples = [_frame(20 + k, size) for k in range(batch)]
        ours = _onnx_translate(dynamic_exports[generator], samples)
        assert ours.shape == (batch, 3, *size)
        assert np.abs(ours - _pytorch_translate(checkpoints[generator], samples)).max() <= DEFAULT_TOLERANCE


def _export_conditioned(tmp_path, capsys, part: str):
    """A tiny SPADE translator with conditioning part `part` on, exported at 32x64: (checkpoint, onnx
    path, spec, contract)."""
    config = config_from_dict({"model": {"generator": "spade", "base_channels": 4, "n_blocks": 1, "n_downsample": 2,
                                         "conditioning": {part: True}}})
    torch.manual_seed(0)
    model, spec = build_generator(config.model)
    checkpoint = tmp_path / f"{part}.pt"
    save_translator(checkpoint, config, model, generator_ema=model.state_dict(), step=1)
    out = tmp_path / f"{part}.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--height", "32", "--width", "64",
                 "--verify-frames", "2"]) == 0, capsys.readouterr().err
    return checkpoint, out, spec, json.loads(contract_path_for(out).read_text())


@needs_export_extra
def test_export_with_the_box_image_feeds_the_frame_and_matches_pytorch(tmp_path, capsys):
    """A box-image translator's contract says its conditioning needs the frame; graph_inputs builds it
    from the frame and the graph's output equals semguard's own translation."""
    checkpoint, out, spec, contract = _export_conditioned(tmp_path, capsys, "box_image")
    assert contract["conditioning"]["box_image"] is True and contract["inputs"][1]["needs_image"] is True
    assert contract["conditioning"]["channels"] == spec.channels == 29 + 3
    assert contract["inputs"][1]["channel_names"][-3:] == ["box_image:R", "box_image:G", "box_image:B"]
    sample = _frame(13)
    sample.boxes += [Box((10.0, 2.0, 14.0, 12.0), 7, 0), Box((40.0, 4.0, 44.0, 14.0), 13, 0)]  # a sign; a car
    contract_boxes = [{"xyxy": b.xyxy, "class_id": b.class_id} for b in sample.boxes]
    feed = conditioning_np.graph_inputs(contract, sample.image, sample.label, sample.instances, contract_boxes)
    box_image = feed["condition"][0, -3:]
    np.testing.assert_allclose(box_image[:, 2:12, 10:14], sample.image[2:12, 10:14].transpose(2, 0, 1) / 255.0,
                               atol=1e-6)
    assert box_image[:, 4:14, 40:44].max() == 0            # a car's pixels are not handed over
    with pytest.raises(ValueError, match="box_image"):
        conditioning_np.build_conditioning_for(contract, sample.label, sample.instances, contract_boxes)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ours = session.run(["translated"], feed)[0]
    assert np.abs(ours - _pytorch_translate(checkpoint, [sample])).max() <= DEFAULT_TOLERANCE


@needs_export_extra
def test_export_with_light_states_carries_them_in_the_contract_and_matches_pytorch(tmp_path, capsys):
    checkpoint, out, spec, contract = _export_conditioned(tmp_path, capsys, "light_states")
    assert contract["conditioning"]["light_states"] is True and contract["conditioning"]["channels"] == spec.channels == 32
    assert contract["inputs"][1]["channel_names"][-3:] == ["light_state:red", "light_state:amber", "light_state:green"]
    sample = _frame(12)
    sample.boxes += [Box((10.0, 2.0, 14.0, 12.0), 6, 0, {"state": "red"}), Box((40.0, 4.0, 44.0, 14.0), 6, 0, {"state": "green"})]
    contract_boxes = [{"xyxy": b.xyxy, "class_id": b.class_id, "attributes": dict(b.attributes)} for b in sample.boxes]
    condition = conditioning_np.build_conditioning_for(contract, sample.label, sample.instances, contract_boxes)
    assert condition[-3].sum() == 40 and condition[-1].sum() == 40 and condition[-2].sum() == 0
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    image = sample.image.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1
    ours = session.run(["translated"], {"image": image, "condition": condition[None]})[0]
    assert np.abs(ours - _pytorch_translate(checkpoint, [sample])).max() <= DEFAULT_TOLERANCE


@needs_export_extra
def test_a_graph_outside_the_tolerance_is_refused_and_nothing_is_left(checkpoints, tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous export")
    real_session = onnx_export.onnxruntime_session

    class Drifting:  # an exporter bug: every output 0.01 off
        def __init__(self, *args):
            self.session = real_session(*args)

        def run(self, names, feed):
            return [y + 0.01 for y in self.session.run(names, feed)]

    monkeypatch.setattr(onnx_export, "onnxruntime_session", Drifting)
    translator = Translator.from_checkpoint(checkpoints["resnet"], device="cpu", tile=None)
    with pytest.raises(SemguardError, match=r"differs from the PyTorch generator by 0\.01.* above the tolerance 0\.001"):
        export_onnx(translator, out, size=(32, 64), verify_frames=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert out.read_bytes() == b"previous export"


# --------------------------------------------------------------------- user errors


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    return err


@needs_export_extra
def test_bad_checkpoint_is_one_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "bad.pt is corrupt" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


@needs_export_extra
def test_unwritable_path_is_one_clear_message(checkpoints, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main(["export", "--checkpoint", str(checkpoints["spade"]), "--out", str(a_file / "m.onnx")]) == 2
    assert "a_file is a file, not a folder" in _one_error_line(capsys)
    assert main(["export", "--checkpoint", str(checkpoints["spade"]), "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    line = _one_error_line(capsys)
    assert "folder" in line and "does not exist" in line
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["export", "--checkpoint", str(checkpoints["spade"]), "--out", str(locked / "m.onnx")]) == 2
        assert "cannot write" in _one_error_line(capsys)


@needs_export_extra
def test_size_not_a_multiple_is_one_clear_message(checkpoints, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(checkpoints["spade"]), "--out", str(tmp_path / "m.onnx"),
                 "--height", "30", "--width", "64"]) == 2
    line = _one_error_line(capsys)
    assert "30x64" in line and "size multiple 4" in line and "--height 32 --width 64" in line
    assert list(tmp_path.iterdir()) == []


def test_missing_export_packages_say_how_to_install(checkpoints, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    assert main(["export", "--checkpoint", str(checkpoints["spade"]), "--out", str(tmp_path / "m.onnx")]) == 2
    line = _one_error_line(capsys)
    assert "onnxruntime" in line and "pip install semguard[export]" in line


# ------------------------------------------------------------ numpy conditioning builder


def _random_inputs(rng, height: int, width: int):
    label = rng.integers(0, NUM_CLASSES, size=(height, width)).astype(np.uint8)
    label[rng.random((height, width)) < 0.1] = IGNORE_ID
    instances = np.zeros((height, width), np.int64)
    for k in range(1, rng.integers(1, 6)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        instances[y:y + rng.integers(1, 12), x:x + rng.integers(1, 20)] = rng.integers(1, 1000)
    boxes = []
    for _ in range(rng.integers(0, 14)):
        kind = rng.integers(0, 5)
        class_id = int(rng.choice(list(BOX_CLASSES) + [0, 12]))
        if kind == 0:    # smaller than a pixel, anywhere (also across pixel edges)
            x1, y1 = rng.uniform(-0.5, width), rng.uniform(-0.5, height)
            x2, y2 = x1 + rng.uniform(1e-3, 0.99), y1 + rng.uniform(1e-3, 0.99)
        elif kind == 1:  # across the border
            x1, y1 = rng.uniform(-10, 2), rng.uniform(-10, height)
            x2, y2 = x1 + rng.uniform(0.2, width), y1 + rng.uniform(0.2, 20)
        elif kind == 2:  # integer, touching the last row/column
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x2, y2 = width, height
        elif kind == 3:  # outside or empty
            x1, y1 = rng.choice([-5.0, width + 1.0]), 2.0
            x2, y2 = x1 + rng.choice([0.0, 2.0]), 6.0
        else:            # ordinary fractional box
            x1, y1 = rng.uniform(0, width), rng.uniform(0, height)
            x2, y2 = x1 + rng.uniform(0, 15), y1 + rng.uniform(0, 10)
        boxes.append((float(x1), float(y1), float(x2), float(y2), class_id))
    return label, instances, boxes


SPECS = [ConditioningSpec(), ConditioningSpec(boxes=False), ConditioningSpec(labels=False, boundaries=False),
         ConditioningSpec(box_classes=(13, 6)), ConditioningSpec(labels=False, boxes=False),
         ConditioningSpec(light_states=True), ConditioningSpec(False, False, False, light_states=True),
         ConditioningSpec(box_image=True), ConditioningSpec(False, False, False, light_states=True, box_image=True)]
STATES = ("red", "amber", "green", "yellow", "Red", "off", None)   # an alias, another case, unknown, none


def test_numpy_builder_equals_semguards_on_random_frames():
    rng = np.random.default_rng(0)
    for trial in range(60):
        height, width = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        frames = [_random_inputs(rng, height, width) for _ in range(2)]
        spec = SPECS[trial % len(SPECS)]
        with_instances = trial % 3 != 0
        label = torch.from_numpy(np.stack([f[0] for f in frames]).astype(np.int64))
        instances = torch.from_numpy(np.stack([f[1] for f in frames])) if with_instances else None
        # traffic lights get states (dict boxes carry them as "attributes", as the folder format's JSON does)
        dicts = [[{"xyxy": list(b[:4]), "class_id": b[4],
                   "attributes": {} if STATES[i % len(STATES)] is None else {"state": STATES[i % len(STATES)]}}
                  for i, b in enumerate(f[2])] for f in frames]
        boxes = [[Box(tuple(d["xyxy"]), d["class_id"], attributes=d["attributes"]) for d in f] for f in dicts]
        images = rng.integers(0, 256, size=(2, height, width, 3), dtype=np.uint8)
        pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)   # as semguard collates
        expected = build_conditioning(label, instances, boxes, spec, pixels).numpy()
        ours = np.stack([conditioning_np.build_conditioning(
            f[0], f[1] if with_instances else None, d, labels=spec.labels, box_channels=spec.boxes,
            boundaries=spec.boundaries, box_classes=spec.box_classes, light_states=spec.light_states,
            box_image=spec.box_image, image=image)
            for f, d, image in zip(frames, dicts, images)])
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, expected, err_msg=f"trial {trial}")


def test_numpy_builder_takes_boxes_as_rows_dicts_or_objects_and_marks_sub_pixel_boxes():
    label = np.zeros((8, 8), np.uint8)
    rows = [(2.2, 3.1, 2.4, 3.3, 7), (-0.2, 7.8, 0.4, 8.0, 6),  # a sub-pixel sign; a sub-pixel light in a corner
            (-0.4, 7.8, 0.1, 8.0, 6)]                           # centre outside the frame: no pixel
    dicts = [{"xyxy": list(r[:4]), "class_id": r[4]} for r in rows]
    objects = [Box(r[:4], r[4]) for r in rows]
    built = [conditioning_np.build_conditioning(label, None, b) for b in (rows, dicts, objects, np.array(rows))]
    for other in built[1:]:
        np.testing.assert_array_equal(other, built[0])
    sign = conditioning_np.LABEL_CHANNELS + 2 * BOX_CLASSES.index(7)
    light = conditioning_np.LABEL_CHANNELS + 2 * BOX_CLASSES.index(6)
    assert built[0][sign].sum() == 1 and built[0][sign, 3, 2] == 1
    assert built[0][light].sum() == 1 and built[0][light, 7, 0] == 1


def test_numpy_boxes_from_instances_equal_semguards():
    rng = np.random.default_rng(1)
    for trial in range(20):
        label, instances, _ = _random_inputs(rng, 24, 40)
        if trial % 4 == 0:
            instances += 5  # no background value present
        classes = None if trial % 2 else (11, 13, 6)
        expected_map, expected_boxes = boxes_from_instances(instances, label, classes)
        ours_map, ours_boxes = conditioning_np.boxes_from_instances(instances, label, classes)
        np.testing.assert_array_equal(ours_map, expected_map)
        assert [(tuple(b["xyxy"]), b["class_id"], b["instance_id"]) for b in ours_boxes] == \
            [(b.xyxy, b.class_id, b.instance_id) for b in expected_boxes]


def test_numpy_builder_constants_and_padding_match_semguard():
    from semguard.translate.tiling import pad_to_multiple

    assert conditioning_np.NUM_CLASSES == NUM_CLASSES and conditioning_np.IGNORE_ID == IGNORE_ID
    assert conditioning_np.BOX_CLASSES == BOX_CLASSES and conditioning_np.TRAIN_ID_NAMES == TRAIN_ID_NAMES
    for spec in SPECS:
        assert conditioning_np.channel_names(spec.labels, spec.boxes, spec.boundaries, spec.box_classes,
                                             spec.light_states, spec.box_image) == spec.channel_names()
    from semguard import labels

    assert conditioning_np.LIGHT_STATES == labels.LIGHT_STATES and conditioning_np.TRAFFIC_LIGHT == labels.TRAFFIC_LIGHT
    assert conditioning_np.LIGHT_STATE_ALIASES == dict(labels.LIGHT_STATE_ALIASES)
    assert conditioning_np.BOX_IMAGE_CLASSES == labels.BOX_IMAGE_CLASSES
    rng = np.random.default_rng(2)
    for height, width in [(30, 62), (3, 64), (32, 2), (1, 1)]:
        array = rng.random((1, 5, height, width)).astype(np.float32)
        np.testing.assert_array_equal(conditioning_np.pad_to_multiple(array, 4),
                                      pad_to_multiple(torch.from_numpy(array), 4).numpy())


def test_numpy_builder_needs_neither_torch_nor_semguard(tmp_path):
    shutil.copy(BUILDER_FILE, tmp_path / "conditioning_np.py")
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None      # importing either now fails
        sys.modules["semguard"] = None
        import numpy as np
        import conditioning_np
        c = conditioning_np.build_conditioning(np.zeros((4, 8), np.uint8), np.zeros((4, 8), np.int32),
                                               [[1, 1, 3, 2, 13]])
        print(c.shape, c.dtype)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(29, 4, 8) float32"


# ------------------------------------------- the example of docs/EXPORT.md (tests/test_docs.py checks the page)

README_EXAMPLE = """
import json, numpy as np, onnxruntime as ort
import conditioning_np                      # semguard/export/conditioning_np.py, copied beside your plugin
contract = json.load(open("model.onnx.json"))
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
frame = np.load("frame.npz")                # from the simulator: image uint8 [H,W,3] RGB, label (train ids), instances
instances, boxes = conditioning_np.boxes_from_instances(frame["instances"], frame["label"])  # or the simulator's boxes
feed = conditioning_np.graph_inputs(contract, frame["image"], frame["label"], instances, boxes)
translated = session.run(["translated"], feed)[0]
real_looking = conditioning_np.to_uint8(translated, frame["label"].shape)  # uint8 [H,W,3], padding cropped
"""


@needs_export_extra
@pytest.mark.parametrize("generator", ["spade", "resnet"])
def test_readme_example_translates_one_frame_like_semguard(generator, checkpoints, dynamic_exports, tmp_path):
    shutil.copy(BUILDER_FILE, tmp_path / "conditioning_np.py")
    shutil.copy(dynamic_exports[generator], tmp_path / "model.onnx")
    shutil.copy(contract_path_for(dynamic_exports[generator]), tmp_path / "model.onnx.json")
    frame = onnx_export.verification_frame(5, 30, 62)  # not a multiple of 4: padded like semguard pads
    np.savez(tmp_path / "frame.npz", image=frame["image"], label=frame["label"], instances=frame["instances"])
    script = ("import sys\nsys.modules['torch'] = None\nsys.modules['semguard'] = None\n" + README_EXAMPLE
              + "np.save('translated.npy', real_looking)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ours = np.load(tmp_path / "translated.npy")
    instances, boxes = boxes_from_instances(frame["instances"], frame["label"])
    sample = Sample(image=frame["image"], label=frame["label"], instances=instances, boxes=boxes)
    translator = Translator.from_checkpoint(checkpoints[generator], device="cpu", tile=None)
    expected = translator.translate_sample(sample).image
    assert ours.shape == expected.shape == (30, 62, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1  # rounding of a float32 difference
