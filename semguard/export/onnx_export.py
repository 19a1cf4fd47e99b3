"""A translator's generator as an ONNX graph, verified against PyTorch before it is written.

Teams run translators next to the simulator (onnxruntime, TensorRT), not only as an
offline data set job. `export_onnx` traces a `Translator`'s generator with torch.onnx's
exporter (torch.export based), runs the graph in onnxruntime (CPU) on a few synthetic
frames and compares it with the PyTorch generator. Only a graph within `tolerance` is
written, next to a sidecar JSON (`<out>.json`) that states its input contract:

    inputs   image      float32 [B,3,H,W] in [-1,1] (RGB, uint8 / 127.5 - 1)
             condition  float32 [B,C,H,W] in {0,1}, channel order = sidecar
                        "conditioning.channel_names" (absent for unconditioned generators)
    output   translated float32 [B,3,H,W] in [-1,1]

H and W must be multiples of the generator's `size_multiple` (pad bottom/right, see
semguard.export.conditioning_np.pad_to_multiple). The graph runs whole frames with
frame-wide instance statistics, like `semguard translate --tile 0`.

Nothing is left behind when an export fails: the graph goes to a temporary file beside
`out` and is renamed over `out` only once verified.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from semguard import __version__
from semguard.common import file_sha256
from semguard.data.sample import Box
from semguard.errors import SemguardError
from semguard.export import DEFAULT_OPSET, DEFAULT_TOLERANCE, DEFAULT_VERIFY_FRAMES, conditioning_np
from semguard.models import build_conditioning

MIN_OPSET = 18                   # the torch.export-based exporter emits opset 18 or later
CONTRACT_FORMAT = "semguard-onnx"
CONTRACT_VERSION = 1
EXPORT_REQUIREMENTS = ("onnx", "onnxruntime", "onnxscript")
INSTALL_HINT = "pip install semguard[export]"


@dataclass(frozen=True)
class ExportResult:
    """What export_onnx wrote and measured."""

    path: Path                   # the ONNX file
    contract_path: Path          # its sidecar JSON
    contract: dict
    max_abs_diff: float          # max |onnxruntime - PyTorch| over the verification frames
    tolerance: float
    seconds: float


def contract_path_for(path: str | Path) -> Path:
    """The sidecar JSON of an ONNX file: model.onnx -> model.onnx.json."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def require_export_packages() -> None:
    """SemguardError naming the missing packages and the install line when any is absent."""
    missing = []
    for name in EXPORT_REQUIREMENTS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise SemguardError(f"semguard export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                            f"not installed; install the export extra: {INSTALL_HINT}")


def check_writable(path: str | Path) -> Path:
    """The output path, or a SemguardError when it cannot be written (checked before the slow export)."""
    path = Path(path)
    if path.is_dir():
        raise SemguardError(f"--out {path} is a directory; give a file name such as {path / 'model.onnx'}")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise SemguardError(f"cannot write {path}: {parent} is a file, not a folder; choose another --out")
    if not parent.is_dir():
        raise SemguardError(f"cannot write {path}: folder {parent} does not exist; create it first")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise SemguardError(f"cannot write {path}: {err.strerror or err} (folder {parent}); "
                            "choose a writable --out") from None
    for existing in (path, contract_path_for(path)):
        if existing.exists() and not os.access(existing, os.W_OK):
            raise SemguardError(f"cannot write {path}: {existing} exists and is read-only; choose another --out")
    return path


def check_size(height: int, width: int, size_multiple: int) -> None:
    """SemguardError unless H, W are positive multiples of the generator's size multiple."""
    if height <= 0 or width <= 0:
        raise SemguardError(f"--height and --width must be positive, got {height}x{width}")
    if height % size_multiple or width % size_multiple:
        def fix(v: int) -> int:
            return -(-v // size_multiple) * size_multiple

        raise SemguardError(
            f"size {height}x{width} (HxW) is not a multiple of the generator's size multiple {size_multiple}; "
            f"use --height {fix(height)} --width {fix(width)} (pad frames at the bottom/right) or --dynamic")


def min_dynamic_size(size_multiple: int) -> int:
    """Smallest H (and W) a dynamic graph accepts: 2 size multiples and at least 8 pixels
    (the generators' reflection pads need a few pixels at the coarsest resolution)."""
    return size_multiple * max(2, math.ceil(8 / size_multiple))


class _GraphForward(nn.Module):
    """The generator with the graph's named inputs (condition only when conditioned)."""

    def __init__(self, generator: nn.Module, conditioned: bool) -> None:
        super().__init__()
        self.generator = generator
        self.conditioned = conditioned

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(image, condition if self.conditioned else None)


def verification_frame(seed: int, height: int, width: int) -> dict:
    """A synthetic frame for checking a graph: uint8 image, blocky train-id map with ignore,
    instances, and boxes of every box class, including sub-pixel boxes and boxes over the border.

    Returns {"image": uint8 [H,W,3], "label": uint8 [H,W], "instances": int32 [H,W],
    "boxes": list of {"xyxy", "class_id"} (traffic lights also "attributes": {"state"})}.
    """
    rng = np.random.default_rng(seed)
    cell = max(1, min(height, width) // 8)
    coarse = rng.integers(0, conditioning_np.NUM_CLASSES, size=(-(-height // cell), -(-width // cell)))
    label = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:height, :width].astype(np.uint8)
    label[rng.random((height, width)) < 0.02] = conditioning_np.IGNORE_ID
    instances = np.zeros((height, width), np.int32)
    boxes = []
    for k in range(6):
        class_id = conditioning_np.BOX_CLASSES[k % len(conditioning_np.BOX_CLASSES)]
        x1, y1 = rng.uniform(-4, width), rng.uniform(-4, height)
        x2, y2 = x1 + rng.uniform(0.3, width / 3), y1 + rng.uniform(0.3, height / 3)
        box = {"xyxy": [x1, y1, x2, y2], "class_id": class_id}
        if class_id == conditioning_np.TRAFFIC_LIGHT:
            box["attributes"] = {"state": ("red", "yellow", "off")[k % 3]}   # an alias and an unknown state too
        boxes.append(box)
        y0, x0 = max(0, int(y1)), max(0, int(x1))
        instances[y0:max(y0, int(y2)), x0:max(x0, int(x2))] = k + 1
    boxes.append({"xyxy": [width / 2 + 0.1, height / 2 + 0.2, width / 2 + 0.4, height / 2 + 0.3],
                  "class_id": conditioning_np.BOX_CLASSES[0]})
    boxes.append({"xyxy": [width - 0.3, -0.5, width + 3.0, 2.5], "class_id": conditioning_np.BOX_CLASSES[1]})
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return {"image": image, "label": label, "instances": instances, "boxes": boxes}


def frame_inputs(frames: list[dict], spec) -> tuple[np.ndarray, np.ndarray | None]:
    """The graph's inputs for frames of one size, conditioning built by both builders.

    Raises RuntimeError when the numpy builder differs from semguard's (a bug: they are twins).
    """
    image = np.stack([f["image"] for f in frames]).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    if spec.channels == 0:
        return image, None
    label = torch.from_numpy(np.stack([f["label"] for f in frames]).astype(np.int64))
    instances = torch.from_numpy(np.stack([f["instances"] for f in frames]).astype(np.int64))
    boxes = [[Box(tuple(b["xyxy"]), b["class_id"], attributes=dict(b.get("attributes", {}))) for b in f["boxes"]]
             for f in frames]
    condition = build_conditioning(label, instances, boxes, spec, torch.from_numpy(image)).numpy()
    twin = np.stack([conditioning_np.build_conditioning(
        f["label"], f["instances"], f["boxes"], labels=spec.labels, box_channels=spec.boxes,
        boundaries=spec.boundaries, box_classes=spec.box_classes, light_states=spec.light_states,
        box_image=spec.box_image, image=f["image"]) for f in frames])
    if not np.array_equal(condition, twin):
        raise RuntimeError("semguard.export.conditioning_np differs from semguard.models.conditioning on a "
                           "verification frame; this is a bug in semguard, please report it")
    return image, condition


def _verification_batches(size: tuple[int, int] | None, size_multiple: int, frames: int) -> list[tuple[int, int, int]]:
    """(batch, H, W) of the verification runs: `frames` single frames at the static size, or
    for a dynamic graph two sizes and two batch sizes."""
    if size is not None:
        return [(1, *size)] * frames
    small = min_dynamic_size(size_multiple)
    sizes = [(2, 2 * small, 4 * small), (1, 3 * small, 5 * small)]
    sizes += [(1, (4 + k) * small, (6 + k) * small) for k in range(max(0, frames - 2))]
    return sizes[:max(2, frames)]


def _export_graph(module: nn.Module, example: tuple, input_names: list[str], opset: int,
                  dynamic_shapes: dict | None, destination: Path, who: str) -> None:
    """torch.onnx.export to one self-contained file (weights inside, no .data file)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, example, None, input_names=input_names,
                                        output_names=["translated"], opset_version=opset, dynamo=True,
                                        dynamic_shapes=dynamic_shapes, verbose=False, external_data=False)
            program.save(destination, external_data=False)
    except Exception as err:  # the generator's code, not the user's input: surface as a bug report
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise RuntimeError(f"torch.onnx.export could not trace the {who} generator (torch {torch.__version__}, "
                           f"opset {opset}): {first}") from err


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def onnxruntime_session(path: Path, threads: int):
    """An onnxruntime CPU session with `threads` intra-op threads (the same budget PyTorch gets)."""
    import onnxruntime as ort   # lazy: optional extra [export]

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def export_onnx(translator, out: str | Path, *, size: tuple[int, int] | None = None, opset: int = DEFAULT_OPSET,
                tolerance: float = DEFAULT_TOLERANCE, verify_frames: int = DEFAULT_VERIFY_FRAMES,
                threads: int | None = None) -> ExportResult:
    """Export `translator`'s generator to `out` (ONNX) and its contract to `out`.json.

    translator: a semguard.translate.Translator (its generator and metadata are used; the
      export runs on CPU in float32). size: (H, W) of a static graph with batch 1, each a
      multiple of the generator's size_multiple; None: dynamic batch, H and W (any
      multiple of size_multiple from `min_dynamic_size` up). opset: ONNX opset (>= 18).
    The graph is run in onnxruntime (CPUExecutionProvider, `threads` intra-op threads,
    default torch.get_num_threads()) on `verify_frames` synthetic frames; when
    max |onnxruntime - PyTorch| over all output pixels exceeds `tolerance` (or is not
    finite), a SemguardError says so and nothing is written.
    """
    require_export_packages()
    import onnx   # lazy: optional extra [export]
    import onnxruntime   # lazy: optional extra [export]

    started = time.monotonic()
    out = check_writable(out)
    if opset < MIN_OPSET:
        raise SemguardError(f"--opset {opset} is too old: torch's ONNX exporter emits opset {MIN_OPSET} or later")
    if tolerance < 0 or not math.isfinite(tolerance):
        raise SemguardError(f"--tolerance must be a finite number >= 0, got {tolerance}")
    if verify_frames < 1:
        raise SemguardError(f"--verify-frames must be at least 1, got {verify_frames}")
    generator = translator.generator.to("cpu").float().eval()
    spec = translator.spec
    multiple = int(translator.size_multiple)
    if size is not None:
        check_size(int(size[0]), int(size[1]), multiple)
        size = (int(size[0]), int(size[1]))
    conditioned = spec.channels > 0
    metadata = translator.metadata
    generator_name = ((metadata.get("config") or {}).get("model") or {}).get("generator", type(generator).__name__)
    input_names = ["image", "condition"] if conditioned else ["image"]
    threads = int(threads or torch.get_num_threads())

    batches = _verification_batches(size, multiple, verify_frames)
    inputs = []
    for index, (batch, height, width) in enumerate(batches):
        frames = [verification_frame(1000 * index + k, height, width) for k in range(batch)]
        inputs.append(frame_inputs(frames, spec))
    module = _GraphForward(generator, conditioned).eval()
    example = tuple(torch.from_numpy(a) for a in inputs[0] if a is not None)
    dynamic_shapes = None
    if size is None:
        blocks = min_dynamic_size(multiple) // multiple
        axes = {0: Dim("batch", min=1), 2: Dim("height_blocks", min=blocks) * multiple,
                3: Dim("width_blocks", min=blocks) * multiple}
        dynamic_shapes = {name: axes for name in input_names}

    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    contract_tmp: Path | None = None
    try:
        with torch.inference_mode(False), torch.no_grad():
            _export_graph(module, example, input_names, opset, dynamic_shapes, tmp, generator_name)
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        got_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if got_opset != opset:
            raise SemguardError(f"torch's exporter produced opset {got_opset} instead of the requested --opset {opset} "
                                f"for this generator; use --opset {got_opset}")
        session = onnxruntime_session(tmp, threads)
        max_diff = 0.0
        checked = []
        for (image, condition), (batch, height, width) in zip(inputs, batches):
            feed = {"image": image} if condition is None else {"image": image, "condition": condition}
            with torch.no_grad():
                reference = module(*(torch.from_numpy(a) for a in feed.values())).numpy()
            (result,) = session.run(["translated"], feed)
            if result.shape != reference.shape:
                raise SemguardError(f"the exported graph returned shape {result.shape} for input {image.shape}, "
                                    f"PyTorch {reference.shape}; not written")
            diff = float(np.abs(result.astype(np.float64) - reference).max())
            if not math.isfinite(diff):
                diff = math.inf
            max_diff = max(max_diff, diff)
            checked.append({"batch": batch, "height": height, "width": width, "max_abs_diff": diff})
        if not max_diff <= tolerance:
            raise SemguardError(
                f"the exported graph differs from the PyTorch generator by {max_diff:.3g} (max |onnxruntime - "
                f"PyTorch| on the [-1,1] scale over {len(checked)} verification runs), above the tolerance "
                f"{tolerance:g}; {out} was not written (try another --opset, or --tolerance if the difference is acceptable)")

        contract = _contract(translator, generator_name, spec, multiple, size, opset, tolerance, max_diff, checked,
                             threads, onnx.__version__, onnxruntime.__version__, tmp, out.name)
        fd, contract_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".json.tmp")
        contract_tmp = Path(contract_name)
        with os.fdopen(fd, "w") as handle:
            json.dump(contract, handle, indent=2)
            handle.write("\n")
        mode = _default_file_mode()  # mkstemp makes 0600 files; give them what open() would
        os.chmod(tmp, mode)
        os.chmod(contract_tmp, mode)
        os.replace(tmp, out)
        os.replace(contract_tmp, contract_path_for(out))
    finally:
        for leftover in (tmp, contract_tmp):
            if leftover is not None and leftover.exists():
                leftover.unlink()
    return ExportResult(path=out, contract_path=contract_path_for(out), contract=contract, max_abs_diff=max_diff,
                        tolerance=tolerance, seconds=time.monotonic() - started)


def _contract(translator, generator_name: str, spec, multiple: int, size, opset: int, tolerance: float,
              max_diff: float, checked: list, threads: int, onnx_version: str, ort_version: str,
              graph: Path, file_name: str) -> dict:
    metadata = translator.metadata
    names = spec.channel_names() if spec.channels else []
    if spec.channels and names != conditioning_np.channel_names(spec.labels, spec.boxes, spec.boundaries,
                                                                  spec.box_classes, spec.light_states, spec.box_image):
        raise RuntimeError("conditioning channel names of semguard and conditioning_np differ; this is a bug")
    dynamic = size is None
    shape = ["batch", None, "height", "width"] if dynamic else [1, None, size[0], size[1]]
    image = {"name": "image", "dtype": "float32", "layout": "NCHW", "shape": [shape[0], 3, shape[2], shape[3]],
             "channels": ["R", "G", "B"], "range": [-1.0, 1.0], "from_uint8": "image_uint8 / 127.5 - 1"}
    condition = None
    if spec.channels:
        condition = {"name": "condition", "dtype": "float32", "layout": "NCHW",
                     "shape": [shape[0], spec.channels, shape[2], shape[3]], "values": [0.0, 1.0],
                     "needs_image": spec.box_image,
                     "channel_names": names, "builder": "semguard/export/conditioning_np.py"}
    return {
        "format": CONTRACT_FORMAT,
        "version": CONTRACT_VERSION,
        "semguard_version": __version__,
        "onnx_file": file_name,
        "onnx_sha256": file_sha256(graph),
        "opset": opset,
        "generator": generator_name,
        "checkpoint": {"path": metadata.get("path"), "sha256": metadata.get("sha256"), "step": metadata.get("step"),
                       "weights": metadata.get("weights"), "trained_with_semguard": metadata.get("semguard_version")},
        "inputs": [image] + ([condition] if condition else []),
        "outputs": [{"name": "translated", "dtype": "float32", "layout": "NCHW",
                     "shape": [shape[0], 3, shape[2], shape[3]], "range": [-1.0, 1.0],
                     "to_uint8": "round((translated + 1) * 127.5) clipped to 0..255"}],
        "size": {"dynamic": dynamic, "height": None if dynamic else size[0], "width": None if dynamic else size[1],
                 "size_multiple": multiple, "min_height": min_dynamic_size(multiple) if dynamic else size[0],
                 "min_width": min_dynamic_size(multiple) if dynamic else size[1],
                 "padding": "pad H and W at the bottom/right up to the size multiple (reflect; edge where the pad "
                            "is not smaller than the size), crop the output back"},
        "normalisation": "instance statistics over the whole frame (as `semguard translate --tile 0`)",
        "conditioning": {"channels": spec.channels, "labels": spec.labels, "boxes": spec.boxes,
                         "boundaries": spec.boundaries, "box_classes": list(spec.box_classes),
                         "light_states": spec.light_states, "box_image": spec.box_image,
                         "num_classes": conditioning_np.NUM_CLASSES, "ignore_id": conditioning_np.IGNORE_ID,
                         "channel_names": names,
                         "box_rule": "pixel xyxy half-open; pixel x inside when x + 0.5 in [x1, x2); a box covering "
                                     "no pixel centre marks the pixel holding its centre; clipped to the frame"},
        "verification": {"provider": "CPUExecutionProvider", "threads": threads, "runs": checked,
                         "max_abs_diff": max_diff, "tolerance": tolerance, "torch_version": torch.__version__,
                         "onnx_version": onnx_version, "onnxruntime_version": ort_version},
    }
