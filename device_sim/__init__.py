"""device_sim: run an exported edgevit model the way a wearable would, with nothing but the TFLite
runtime (ai-edge-litert, or tflite_runtime), numpy, OpenCV and psutil.

It never imports torch, tensorflow, edgevit or export; everything it knows about a model comes from
the sidecar `model.json` written by export.

    python -m device_sim --model artifacts/x/int8 --profile ar-glasses    # the frame loop
    python -m device_sim.bench artifacts/x/int8/model.tflite --threads 1,2  # on-device benchmark
"""

__version__ = "0.1.0"
