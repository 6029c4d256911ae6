"""``swin-train --config NAME.py``: training and ``--eval-only`` for LazyConfig recipes.

detectron2's ``tools/lazyconfig_train_net.py`` loop (instantiate ``model``, ``optimizer``,
``dataloader.train``; hooks for the LR schedule, checkpoints, evaluation and logs) on the
project's engine pieces, so a ``.py`` recipe gets what applies of the YAML path:

- ``--resume``: the checkpointer's fallback to the newest readable checkpoint, atomic saves, official
  Swin weights (ImageNet or mmdet COCO) as ``train.init_checkpoint``; model, optimizer (with the
  grad scaler), LR schedule and iteration are restored. Not the data order or the RNG states: a
  resumed LazyConfig run continues, but is not bit-identical to an uninterrupted one (that is the
  YAML path's loader);
- SIGTERM/SIGINT: a checkpoint at the current iteration, one line with the resume command, exit 0;
  a NaN/inf loss or a lost rank: one ``error:`` line;
- ``train.amp.enabled``: mixed precision in ``train.amp.precision`` (bf16 on CPU or GPU, fp16 on GPU;
  fp16 when not given, as detectron2's AMP), CPU included;
- ``train.device`` cuda without a GPU: one warning, then the CPU; ``--num-gpus N`` on CPU: N gloo processes;
- the built-in ``shapes_*`` datasets are registered (under ``$DETECTRON2_DATASETS/shapes``).

Overrides are detectron2's LazyConfig ``key=value`` (``train.max_iter=100``; a key that is not in the
config is added with a warning, one under a node that does not exist is an error); the YAML path's
``--train-json`` options and per-process batch rescaling do not apply.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import sys
from typing import Any

from detectron2.config import LazyConfig, instantiate
from detectron2.engine import create_ddp_model, default_setup, default_writers, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from omegaconf import DictConfig, ListConfig, OmegaConf

from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.config import ConfigError
from swin_scratch.detection.dataset_checks import check_datasets_available
from swin_scratch.detection.datasets import register_shapes_datasets
from swin_scratch.detection.device import use_available_train_device
from swin_scratch.detection.poolers import use_fast_roi_align_grad
from swin_scratch.engine.interruptions import StopOnSignal, StopRequest
from swin_scratch.engine.mixed_precision import step_trainer
from swin_scratch.engine.trainer import ddp_device_ids, train_until_stopped
from swin_scratch.memory import reuse_freed_memory
from swin_scratch.precision import check_precision, device_type_of

logger = logging.getLogger("swin_scratch")


def load_lazy_config(path: str, overrides: list[str]) -> Any:
    """The LazyConfig at ``path`` with ``key=value`` overrides, or one :class:`ConfigError` naming the problem."""
    try:
        cfg = LazyConfig.load(path)
    except Exception as err:  # syntax errors, failed imports inside the recipe
        raise ConfigError(f"{path}: cannot load the LazyConfig: {type(err).__name__}: {err}") from None
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ConfigError(f"LazyConfig overrides are key=value (e.g. train.max_iter=100), got {' '.join(bad)}")
    for item in overrides:
        _check_override_key(cfg, item)
    try:
        return LazyConfig.apply_overrides(cfg, list(overrides))
    except Exception as err:
        raise ConfigError(f"{path}: override {' '.join(overrides)}: {type(err).__name__}: {err}") from None


def _check_override_key(cfg: Any, item: str) -> None:
    """A key under a node that does not exist is a :class:`ConfigError`; a new key under an existing node is
    added, as detectron2 does (``train.seed=1``), with one warning that names the closest existing key
    (none for Hydra's explicit ``+train.seed=1``)."""
    key = item.split("=", 1)[0].lstrip("+")
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not isinstance(node, (DictConfig, ListConfig)):
        raise ConfigError(f"override {item}: the config has no {parent!r} to set {leaf!r} in{_closest(cfg, parent)}")
    if isinstance(node, DictConfig) and leaf not in node and not item.startswith("+"):
        print(f"warning: override {item}: {key} is not in the config; added as a new key{_closest(cfg, key)}",
              file=sys.stderr)


def _closest(cfg: Any, key: str) -> str:
    """`` (did you mean train.max_iter?)``: the nearest existing name where ``key``'s path first leaves the config."""
    node, walked = cfg, []
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            names = [str(name) for name in node.keys()] if isinstance(node, DictConfig) else []
            matches = difflib.get_close_matches(part, names, n=1)
            return f" (did you mean {'.'.join([*walked, matches[0]])}?)" if matches else ""
        node, walked = node[part], [*walked, part]
    return ""


def _dataset_names(loader: Any) -> list[str]:
    names = loader.dataset.names
    return [names] if isinstance(names, str) else list(names)


def check_lazy_inputs(args: argparse.Namespace, cfg: Any) -> Any:
    """In the launching process: the device this machine has, the AMP precision, the datasets."""
    for option in ("train_json", "train_images", "test_json", "test_images"):
        if getattr(args, option, None):
            raise ConfigError(f"--{option.replace('_', '-')} is for YAML configs; in a LazyConfig set "
                              "dataloader.train.dataset.names / dataloader.test.dataset.names to registered datasets")
    device = use_available_train_device(cfg.train)
    if cfg.train.amp.enabled and not args.eval_only:
        check_precision(cfg.train.amp.get("precision", "fp16"), device_type_of(device), source="train.amp.precision")
    register_shapes_datasets()
    names = _dataset_names(cfg.dataloader.test)
    if not args.eval_only:
        names = _dataset_names(cfg.dataloader.train) + names
    check_datasets_available(names)
    return cfg


def evaluate(cfg: Any, model) -> dict[str, Any]:
    """``dataloader.test`` through ``dataloader.evaluator`` (the project's COCO evaluator in the recipes)."""
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def run_lazy(args: argparse.Namespace, cfg: Any) -> dict[str, Any] | None:
    """One process's training (or evaluation) of a LazyConfig."""
    reuse_freed_memory()
    register_shapes_datasets()  # registries are per process
    default_setup(cfg, args)  # logging, seeding, OUTPUT_DIR/config.yaml
    model = instantiate(cfg.model).to(cfg.train.device)
    if args.eval_only:
        SwinCheckpointer(model, save_dir=cfg.train.output_dir).resume_or_load(cfg.train.init_checkpoint,
                                                                             resume=args.resume)
        return evaluate(cfg, model)

    use_fast_roi_align_grad(model)  # RoIAlign's CPU gradient from matrix products (detection/poolers.py)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **cfg.train.ddp, **ddp_device_ids(cfg.train.device))
    trainer = step_trainer(model, loader, optimizer, cfg.train.amp.enabled, cfg.train.amp.get("precision", "fp16"),
                           device_type_of(cfg.train.device))
    trainer.checkpointer = SwinCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    stop_request = StopRequest()
    main_process = comm.is_main_process()
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(trainer.checkpointer, **cfg.train.checkpointer) if main_process else None,
        hooks.EvalHook(cfg.train.eval_period, lambda: evaluate(cfg, model)),
        # after the LR step and the periodic checkpoint (as in the YAML trainer), before the writer: the
        # writer's last word then comes from after_train, once (detectron2's ETA divides by the
        # iterations since its previous write, which are 0 if it wrote at this iteration already)
        StopOnSignal(stop_request),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if main_process else None,
    ])
    trainer.checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start_iter = trainer.iter + 1 if trainer.checkpointer.resumed_from else 0
    return train_until_stopped(trainer, stop_request, lambda: trainer.train(start_iter, cfg.train.max_iter),
                               fix="lower optimizer.lr or add gradient clipping")
