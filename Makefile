# edgevit: every target sets itself up, so `make demo` and `make test` work as the first command
# on a fresh clone. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done

# the family member searched on the wearables' cores (BENCHMARKS.md, Search)
MODEL    ?= edgevit_wear
BASELINE ?= mobilenetv2_100
IMG      ?= 64
DATA     ?= digits
RUN      ?= runs/$(MODEL)-$(DATA)
CKPT     := $(RUN)/best.pt
ART      ?= artifacts/$(MODEL)-$(DATA)
PROFILE  ?= ar-glasses
DEMO_OUT ?= runs/demo-$(PROFILE)

# test processes (pytest-xdist; a test file stays in one process): one per core, at most 4
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

TRAIN_ARGS ?=
TRAIN_CMD = $(BIN)/edgevit train --model $(MODEL) --data $(DATA) --img-size $(IMG) --baseline $(BASELINE) --out $(RUN) $(TRAIN_ARGS)
EXPORT_CMD = $(BIN)/edgevit export $(CKPT) --out $(ART)

.PHONY: help setup arm-setup mediapipe-models mediapipe-ref info train export demo face-demo search latency-table bench bench-glyphs bench-arm bench-search bench-protocol test test-slow lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install everything (idempotent)

# torch first: pip takes the CPU wheel that lies on disk; any later request for torch is then
# satisfied instead of pulling a multi-GB CUDA build. onnx2tf last and without its dependencies:
# its metadata pins ai-edge-litert==2.1.0, which computes wrong int8 results (pyproject.toml says more).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "edgevit needs Python >= 3.11 (found $$($(BIN)/python -V))"; exit 1; }
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,export,device,dev,search]'
	$(BIN)/pip install -q --no-deps onnx2tf==1.29.24
	@touch $(STAMP)
	@echo "setup done: $(VENV)"

arm-setup: $(STAMP)  ## aarch64 runtime under qemu-user in .arm/ (root for apt-get; Debian + PyPI only; idempotent)
	ARM_DIR=.arm HOST_PY=$(BIN)/python bash scripts/arm_setup.sh

mediapipe-models: $(STAMP)  ## MediaPipe's .tflite models + a portrait photo into .models/ (pip download from PyPI, nothing installed)
	$(BIN)/python scripts/fetch_models.py --dir .models

# Google's MediaPipe itself, as the reference the built-in pipelines are tested against: installed into its own
# environment (never .venv: its numpy and OpenCV are not the project's), once; the reference is rebuilt only when
# the frames' or MediaPipe's scripts change (scripts/mediapipe_ref.py keeps a key).
MP_VENV  := .mediapipe-venv
MP_STAMP := $(MP_VENV)/.setup-done
$(MP_STAMP):
	@test -x $(MP_VENV)/bin/python || $(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/pip install -q mediapipe==0.10.14
	@touch $(MP_STAMP)

mediapipe-ref: mediapipe-models $(MP_STAMP)  ## MediaPipe 0.10.14 (own venv) on frames made from the portrait: .mediapipe-ref/ (cached)
	$(BIN)/python -m scripts.mediapipe_ref --venv $(MP_VENV) --out .mediapipe-ref

info: $(STAMP)  ## params, MACs and attention blocks of every model
	$(BIN)/edgevit info

train: $(STAMP)  ## train edgevit_wear (and the MobileNetV2 baseline, same recipe) on the embedded digits (DATA=glyphs: the hard set)
	$(TRAIN_CMD)

$(CKPT): | $(STAMP)
	$(TRAIN_CMD)

export: $(CKPT)  ## export the trained model to ONNX + TFLite fp32/fp16/int8 (trains first if missing)
	$(EXPORT_CMD)

$(ART)/int8/model.json: $(CKPT) | $(STAMP)
	$(EXPORT_CMD)

# The device's latency is projected from instructions counted on the aarch64 runtime (make arm-setup);
# where that cannot be built (no root for apt-get), the demo still runs and says its latency is the host's.
demo: $(ART)/int8/model.json  ## train and export if needed, build the aarch64 env, simulate on AR glasses for 20 s, report
	@$(MAKE) --no-print-directory arm-setup || echo "demo: no aarch64 environment; latency will be this host's, not projected"
	$(BIN)/edgevit simulate --model $(ART)/int8 --profile $(PROFILE) --duration 20 --out $(DEMO_OUT)

# A budget missed (exit 3) is a result, printed in the table, not a failure of the demo: the video is written.
face-demo: mediapipe-models  ## MediaPipe's face pipeline (detector -> landmarks, tracked) on AR glasses, 10 s: runs/face-demo-ar-glasses/demo.mp4
	@$(MAKE) --no-print-directory arm-setup || echo "face-demo: no aarch64 environment; latency will be this host's, not projected"
	$(BIN)/edgevit simulate --pipeline face --profile $(PROFILE) --duration 10 --out runs/face-demo-$(PROFILE) \
		|| { rc=$$?; [ $$rc -eq 3 ] && echo "face-demo: a budget was missed (see the table); the video is written"; }

# The search reads the committed latency table (search/latency_table.json); `make latency-table` rebuilds it.
SEARCH_OUT  ?= runs/search
SEARCH_ARGS ?=
search: $(STAMP)  ## search the family's design under 0.8x MobileNetV2's projected int8 latency on smartwatch + ar-glasses (Optuna; resumable): runs/search
	$(BIN)/edgevit search --out $(SEARCH_OUT) $(SEARCH_ARGS)

latency-table: arm-setup  ## rebuild search/latency_table.json: every part of the design space counted on the A53/A55/A76 (~1 h; resumable)
	$(BIN)/python -m search.table build --img 64,224

bench: $(CKPT)  ## benchmark suite (~15 min, then bench-glyphs): benchmarks/results/*.json, BENCHMARKS.md, plots
	$(BIN)/python -m benchmarks.run --run-dir $(RUN)
	$(BIN)/python -m benchmarks.glyphs

bench-glyphs: $(STAMP)  ## accuracy on glyphs (~2 h on 2 cores; resumable): 12 trainings with the make-train recipe, exported, goals re-judged
	$(BIN)/python -m benchmarks.glyphs

bench-search: arm-setup  ## the Search section of BENCHMARKS.md: table vs whole-model counts, the search (.bench-work/search), the protocol's results
	$(BIN)/python -m benchmarks.search

bench-protocol: $(STAMP)  ## accuracy protocol on glyphs (40 epochs, lr sweep, 3 seeds, Welch's t-test; many hours; resumable)
	$(BIN)/python -m benchmarks.protocol $(PROTOCOL_ARGS)

bench-arm: arm-setup  ## ARM benchmarks (~30 min): instruction counts, projection calibration, BENCHMARKS.md ARM section
	$(BIN)/python -m benchmarks.arm

# The tests that run third-party models need `make mediapipe-models` (PyPI), the comparison with MediaPipe itself
# `make mediapipe-ref`; without them those tests are skipped, with the reason.
test: $(STAMP)  ## the default test suite (slow tests excluded)
	@$(MAKE) --no-print-directory mediapipe-models || echo "test: no MediaPipe models (PyPI unreachable?); their tests are skipped"
	@$(MAKE) --no-print-directory mediapipe-ref || echo "test: no MediaPipe reference (PyPI unreachable?); the comparison is skipped"
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --durations=40

test-slow: $(STAMP)  ## only the slow tests (full training, every variant through the converter)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check edgevit edgevit_cli export device_sim contract search tests benchmarks scripts

# Only what these targets wrote, file by file from their manifests (contract.outputs): a run or export
# you made yourself under runs/ or artifacts/, or a file you put into one of these folders, stays.
clean:  ## remove what train/export/demo/face-demo wrote (by their manifests) and caches (keeps .venv, .arm, .models, .mediapipe-venv, .mediapipe-ref)
	$(PYTHON) -m contract.outputs clean $(RUN) $(ART) $(DEMO_OUT) runs/face-demo-$(PROFILE)
	rm -rf .pytest_cache .ruff_cache
