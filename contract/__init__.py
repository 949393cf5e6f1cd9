"""contract: the one copy of what export and device_sim must agree on. numpy + stdlib at import time.

- `card`: the model card (model.json) schema, read / write / validate / build.
- `images`: the resize and crop policy, image file suffixes.
- `quant`: input quantization and output dequantization, as the device runs them.
- `files`: sha256, atomic writes, JSON that refuses NaN and infinity, a real writability probe.
- `outputs`: output folders that never lose a user's file (staging, manifest, publish, lock).
- `versions`: the project's version and installed tool versions.
- `runtime`: the TFLite interpreter class (ai-edge-litert, else tflite-runtime), found lazily.
- `errors`: the one-line user-error type, exit codes and the command runner (a user's mistake: one line,
  exit 2; a bug: its traceback, exit 1).

export writes through it, device_sim reads through it. It imports nothing of the project, and
nothing heavier than numpy at import time (OpenCV and the runtime are imported where used).
"""

from contract.versions import project_version

__version__ = project_version()
