# Two commands do all set-up: `make test` and `make demo`. Each (re)builds .venv only when it is
# missing or older than the files that define it, and reuses it otherwise.
PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.swin_scratch-installed
TORCH_SPEC := torch==2.14.1 torchvision==0.29.1
ENV_INPUTS := setup.py Makefile swin_scratch/compat/detectron2_fixes.py swin_scratch/compat/install_detectron2.py
PYTEST_ARGS ?=

DEMO_OUT := output/swin_shapes

.PHONY: setup test test-fast demo clean-venv

setup: $(STAMP)

$(STAMP): $(ENV_INPUTS)
	@echo "== building $(VENV) (missing or stale) =="
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[test,export,faster-eval]'
	$(PY) -m swin_scratch.compat.install_detectron2
	$(PY) -m swin_scratch.env
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# The main job on the built-in data: generate shapes (once), train Swin Mask R-CNN on CPU
# (resuming if interrupted; a finished run is reused), evaluate, draw predictions and plots.
demo: $(STAMP)
	$(PY) tools/make_shapes_dataset.py
	$(PY) tools/train_net.py --config swin_shapes.yaml --resume OUTPUT_DIR $(DEMO_OUT)
	$(PY) tools/plot_metrics.py $(DEMO_OUT)
	$(PY) tools/demo.py --config swin_shapes.yaml --weights $(DEMO_OUT)/model_final.pth \
		--input $$(ls datasets/shapes/val/*.png | head -n 8) --output $(DEMO_OUT)/predictions
	@echo "== demo outputs =="
	@echo "metrics:      $(DEMO_OUT)/metrics.json"
	@echo "evaluation:   $(DEMO_OUT)/inference/shapes_val/"
	@echo "plots:        $$(ls $(DEMO_OUT)/plots/*.png | tr '\n' ' ')"
	@echo "predictions:  $(DEMO_OUT)/predictions/*_pred.png"

clean-venv:
	rm -rf $(VENV)
