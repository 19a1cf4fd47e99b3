"""`semguard export`: a translator checkpoint's EMA generator as a verified ONNX graph.

    semguard export --checkpoint runs/toy/final.pt --out model.onnx [--opset 18]
        [--height H --width W | --dynamic] [--tolerance 1e-3] [--verify-frames 3] [--threads N]

Writes model.onnx and its input contract model.onnx.json, only after onnxruntime (CPU)
reproduced the PyTorch generator within --tolerance on synthetic frames. Exit status 0
when written, 2 for a user error (bad checkpoint, unwritable --out, a size that is not a
multiple of the generator's size multiple, a graph outside the tolerance, missing
`pip install semguard[export]`).
"""

from __future__ import annotations

from semguard.console import output_console
from semguard.errors import SemguardError
from semguard.export import DEFAULT_OPSET, DEFAULT_TOLERANCE, DEFAULT_VERIFY_FRAMES
from semguard.export.onnx_export import check_writable, contract_path_for, export_onnx, require_export_packages
from semguard.translate.translator import Translator
from semguard.validate import number, output_file, require_memory, workers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a translator to ONNX (verified with onnxruntime) plus its input contract",
        description="Export the EMA generator of a translator checkpoint as an ONNX graph with a sidecar JSON "
                    "(OUT.json) stating the input contract. The graph is run in onnxruntime (CPU) on synthetic "
                    "frames and written only when it matches PyTorch within --tolerance. "
                    "Needs `pip install semguard[export]`.")
    parser.add_argument("--checkpoint", required=True, help="translator checkpoint (from `semguard train`)")
    parser.add_argument("--out", required=True, help="ONNX file to write (its contract goes to OUT.json)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 18; default {DEFAULT_OPSET})")
    parser.add_argument("--height", type=int, help="static graph: frame height (a multiple of the size multiple)")
    parser.add_argument("--width", type=int, help="static graph: frame width (a multiple of the size multiple)")
    parser.add_argument("--dynamic", action="store_true",
                        help="dynamic batch, height and width (the default when no --height/--width is given)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest |onnxruntime - PyTorch| accepted on the [-1,1] scale (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--verify-frames", type=int, default=DEFAULT_VERIFY_FRAMES,
                        help="verification runs (frames at the static size; sizes and batch sizes when dynamic)")
    parser.add_argument("--threads", type=int, help="CPU threads for the verification (default: torch's)")
    parser.set_defaults(handler=run_export)


# peak memory per pixel of a static-size export: the generator's activations in PyTorch and in onnxruntime
# (a generous estimate, as for translate's whole-frame passes)
EXPORT_BYTES_PER_PIXEL = 16 << 10


def run_export(args) -> int:
    console = output_console(stderr=True, soft_wrap=True)
    if args.dynamic and (args.height is not None or args.width is not None):
        raise SemguardError("--dynamic and --height/--width exclude each other: give a static size or --dynamic")
    if (args.height is None) != (args.width is None):
        raise SemguardError("a static graph needs both --height and --width (or neither, for --dynamic)")
    check_writable(args.out)
    output_file(args.out, "--out", {"--checkpoint": args.checkpoint}, example="model.onnx")
    output_file(contract_path_for(args.out), "--out (its contract file)", example="model.onnx.json")
    number(args.opset, "--opset", low=1, high=1000, integer=True)
    number(args.verify_frames, "--verify-frames", low=1, high=1000, integer=True)
    number(args.tolerance, "--tolerance", low=0.0, low_open=True)
    workers(args.threads, "--threads", low=1)
    for flag, value in (("--height", args.height), ("--width", args.width)):
        number(value, flag, low=1, high=1 << 16, integer=True)
    if args.height is not None and args.width is not None:
        # the export traces and verifies the generator at this size, in PyTorch and in onnxruntime at once
        require_memory(EXPORT_BYTES_PER_PIXEL * args.height * args.width,
                       f"exporting and verifying at --height {args.height} --width {args.width}",
                       "export at a smaller static size, or with --dynamic")
    require_export_packages()

    translator = Translator.from_checkpoint(args.checkpoint, device="cpu", ema=True, tile=None)
    size = (args.height, args.width) if args.height is not None else None
    result = export_onnx(translator, args.out, size=size, opset=args.opset, tolerance=args.tolerance,
                         verify_frames=args.verify_frames, threads=args.threads)
    contract = result.contract
    shape = "dynamic batch/height/width" if size is None else f"1x3x{size[0]}x{size[1]}"
    console.print(
        f"exported {contract['generator']} generator ({contract['checkpoint']['weights']}, {shape}, "
        f"size multiple {contract['size']['size_multiple']}, opset {contract['opset']}) -> {result.path}; "
        f"onnxruntime vs PyTorch max |diff| {result.max_abs_diff:.2e} <= {result.tolerance:g}; "
        f"contract -> {result.contract_path} ({result.seconds:.1f} s)")
    return 0
