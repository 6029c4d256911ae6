# Two commands do all set-up: `make test` and `make demo`. Each (re)builds .venv only when it is
# missing or older than the files that define it, and reuses it otherwise.
# `make test-upstream` runs the suite again against upstream detectron2 (a wheel with its compiled
# ops) in .venv-upstream, a venv layered on .venv's packages (torch is not installed twice).
PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.swin_scratch-installed
TORCH_SPEC := torch==2.14.1 torchvision==0.29.1
ENV_INPUTS := setup.py Makefile swin_scratch/compat/detectron2_fixes.py swin_scratch/compat/install_detectron2.py
PYTEST_ARGS ?=

UPSTREAM_VENV := .venv-upstream
UPSTREAM_PY := $(UPSTREAM_VENV)/bin/python
UPSTREAM_STAMP := $(UPSTREAM_VENV)/.swin_scratch-installed
# upstream detectron2 main (02b5c4e) built for CPython 3.11 + torch 2.14.1 with its CPU ops; CI's
# checkout has shared/ beside it (see the README next to the wheel)
DETECTRON2_WHEEL ?= ../shared/wheels/detectron2-0.6-cp311-cp311-linux_x86_64.whl
DETECTRON2_WHEEL_SHA256 ?= dc82709c470aa944aecb010a2c9fda921056625a28fac3fb94f8398b7dd4642f

# make demo DEMO_CONFIG=swin_v2_shapes.yaml: the same demo with a Swin V2 backbone
DEMO_CONFIG ?= swin_shapes.yaml
DEMO_OUT ?= output/$(basename $(DEMO_CONFIG))

.PHONY: setup setup-upstream test test-upstream test-fast lint demo clean-venv

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

# ruff, configured in pyproject.toml (CI runs this before the tests)
lint: $(STAMP)
	$(VENV)/bin/ruff check swin_scratch tools tests

# .venv-upstream: no pip/setuptools of its own (--without-pip); a .pth adds .venv's site-packages
# (and runs its .pth files: the editable swin_scratch) after its own, so pip there sees torch & co.
# as installed and adds only what the wheel needs beyond them. The installer's `spec` mode installs the
# sha256-checked wheel and mends it with the same fix table as the `pb1-fallback` mode.
setup-upstream: $(UPSTREAM_STAMP)

$(UPSTREAM_STAMP): $(STAMP) $(DETECTRON2_WHEEL)
	@echo "== building $(UPSTREAM_VENV) on $(VENV)'s packages with $(DETECTRON2_WHEEL) =="
	@echo "$(DETECTRON2_WHEEL_SHA256)  $(DETECTRON2_WHEEL)" | sha256sum --check --strict \
		|| { echo "error: $(DETECTRON2_WHEEL): sha256 is not $(DETECTRON2_WHEEL_SHA256); use the wheel its README describes" >&2; exit 2; }
	rm -rf $(UPSTREAM_VENV)
	$(PY) -m venv --without-pip $(UPSTREAM_VENV)
	$(UPSTREAM_PY) -c "import sys; print(f'import site; site.addsitedir({sys.argv[1]!r})')" \
		"$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		> "$$($(UPSTREAM_PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/swin_scratch_base_venv.pth"
	DETECTRON2_SPEC=$(DETECTRON2_WHEEL) $(UPSTREAM_PY) -m swin_scratch.compat.install_detectron2
	$(UPSTREAM_PY) -m swin_scratch.env
	@touch $(UPSTREAM_STAMP)

$(DETECTRON2_WHEEL):
	@echo "error: $(DETECTRON2_WHEEL) not found; make test-upstream needs upstream detectron2's wheel: set DETECTRON2_WHEEL=<path> (and DETECTRON2_WHEEL_SHA256=<its sha256>)" >&2; exit 2

# SWIN_SCRATCH_EXPECT_COMPILED_OPS: tests of detectron2's compiled ops must run here, never skip
test-upstream: $(UPSTREAM_STAMP)
	SWIN_SCRATCH_EXPECT_COMPILED_OPS=1 $(UPSTREAM_PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# The main job on the built-in data: generate shapes (once), train Swin Mask R-CNN on CPU
# (resuming if interrupted; a finished run is reused), evaluate, draw predictions (one label per
# object: class-agnostic NMS, which the evaluation leaves off as it costs AP) and plots, and say how
# long training took on what machine (read from the run's log.txt).
demo: $(STAMP)
	$(PY) tools/make_shapes_dataset.py
	$(PY) tools/train_net.py --config $(DEMO_CONFIG) --resume OUTPUT_DIR $(DEMO_OUT)
	$(PY) tools/plot_metrics.py $(DEMO_OUT)
	$(PY) tools/demo.py --config $(DEMO_CONFIG) --weights $(DEMO_OUT)/model_final.pth \
		--dataset shapes_val --limit 8 --output $(DEMO_OUT)/predictions \
		--opts MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS True
	@echo "== demo outputs =="
	@echo "metrics:      $(DEMO_OUT)/metrics.json"
	@echo "evaluation:   $(DEMO_OUT)/inference/shapes_val/ (coco_eval.json, per_category_*.csv)"
	@echo "AP pictures:  $$(ls $(DEMO_OUT)/inference/shapes_val/*.png | tr '\n' ' ')"
	@echo "plots:        $$(ls $(DEMO_OUT)/plots/*.png | tr '\n' ' ')"
	@echo "predictions:  $(DEMO_OUT)/predictions/*_pred.png"
	@echo "== training time =="
	@$(PY) tools/training_speed.py $(DEMO_OUT)

clean-venv:
	rm -rf $(VENV) $(UPSTREAM_VENV)
