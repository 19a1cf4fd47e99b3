"""Running a semguard translator outside semguard: ONNX export and a numpy conditioning builder.

- semguard.export.onnx_export: a translator checkpoint's generator as a verified ONNX graph
  plus a sidecar JSON stating its input contract (`semguard export`).
- semguard.export.conditioning_np: the conditioning tensor built with numpy only, for a
  simulator plugin (no torch, no semguard needed; loadable by file path).

This package imports nothing heavy itself, so `import semguard.export.conditioning_np`
stays numpy-only.
"""

DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-3         # max |onnxruntime - PyTorch| on the [-1,1] scale (1/7.8 of a uint8 step)
DEFAULT_VERIFY_FRAMES = 3
