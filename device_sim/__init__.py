"""device_sim: run an exported model the way a wearable would, with nothing but the TFLite runtime
(ai-edge-litert, or tflite_runtime), numpy, OpenCV and psutil.

It never imports torch, tensorflow, edgevit or export; everything it knows about a model comes from
the model card (model.json, read through the `contract` package) written by export.

    edgevit simulate --model artifacts/x/int8 --profile ar-glasses   # the frame loop (python -m device_sim too)
    edgevit bench artifacts/x/int8/model.tflite --threads 1,2         # on-device benchmark
"""

from contract import __version__  # noqa: F401 - the project's one version

