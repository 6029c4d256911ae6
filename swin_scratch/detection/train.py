"""What ``tools/train_net.py`` does, importable so tests can drive it."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from swin_scratch.checkpoint_io import CheckpointError
from swin_scratch.detection.checkpoint import SwinCheckpointer
from swin_scratch.detection.config import ConfigError, get_swin_cfg, resolve_config_path
from swin_scratch.detection.interruptions import LostRankError
from swin_scratch.detection.launch import launch
from swin_scratch.detection.data_checks import DatasetFormatError, DatasetNotFoundError, check_datasets_available
from swin_scratch.detection.trainer import Trainer, TrainingDivergedError

# Mistakes a user can fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, DatasetNotFoundError, DatasetFormatError, CheckpointError, TrainingDivergedError)


def build_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser(
        epilog="Examples:\n"
        "  python tools/train_net.py --config swin_coco.yaml --num-gpus 8\n"
        "  python tools/train_net.py --config swin_shapes.yaml SOLVER.MAX_ITER 200\n"
        "  python tools/train_net.py --config swin_coco.yaml --eval-only MODEL.WEIGHTS model_final.pth\n"
        "--num-gpus N with MODEL.DEVICE cpu starts N CPU processes (gloo).\n"
        "Under torchrun, the process group comes from torchrun's environment."
    )
    # detectron2's default is a fixed port (49152 for uid 0): concurrent jobs on one machine collide.
    # "auto": single-machine processes meet through a temp file (swin_scratch.detection.launch).
    parser.set_defaults(dist_url="auto")
    parser.add_argument(
        "--config", dest="config_file", metavar="NAME_OR_PATH",
        help="config path, or a bare name such as swin_coco.yaml looked up in configs/",
    )
    return parser


def setup(args: argparse.Namespace):
    """Config + datasets for one process; detectron2's default_setup does logging and seeding."""
    from swin_scratch.data import register_shapes_datasets

    cfg = get_swin_cfg(args.config_file, args.opts)
    register_shapes_datasets(cfg.DATASETS.SHAPES_ROOT or None)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def check_inputs(args: argparse.Namespace) -> CfgNode:
    """Validate config and dataset paths in the launching process, before any worker starts."""
    from swin_scratch.data import register_shapes_datasets

    cfg = get_swin_cfg(args.config_file, args.opts)
    register_shapes_datasets(cfg.DATASETS.SHAPES_ROOT or None)
    names = list(cfg.DATASETS.TEST) if args.eval_only else list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    check_datasets_available(names)
    if not args.eval_only:
        warn_if_training_from_scratch(cfg)
    return cfg


def warn_if_training_from_scratch(cfg: CfgNode) -> None:
    """One line when a real (non-demo) dataset is trained from random initialization."""
    real_datasets = [name for name in cfg.DATASETS.TRAIN if not name.startswith("shapes_")]
    if not cfg.MODEL.WEIGHTS and real_datasets:
        print(
            f"warning: MODEL.WEIGHTS is empty: training on {', '.join(real_datasets)} from random initialization; "
            "the official recipe starts from ImageNet weights (the COCO configs name their URL)",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    """The per-process body: train (or evaluate) and return the evaluation results."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        SwinCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def run_reporting_errors(args: argparse.Namespace) -> dict[str, Any] | None:
    """:func:`run`, printing an error as one line in the process that met it (a spawned process has
    no other way to report it without a traceback) and ending that process with its exit status."""
    try:
        return run(args)
    except USER_ERRORS + (LostRankError,) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(getattr(err, "exit_status", 2)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.config_file:
        print("error: give a config: --config NAME_OR_PATH (e.g. swin_shapes.yaml)", file=sys.stderr)
        return 2
    try:
        # detectron2's default_setup reads the file again by path: give it the resolved one
        args.config_file = str(resolve_config_path(args.config_file))
        cfg = check_inputs(args)
        use_cuda = str(cfg.MODEL.DEVICE).startswith("cuda")
        launch(
            run_reporting_errors,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            use_cuda=use_cuda,
        )
    except USER_ERRORS as err:
        logging.getLogger("swin_scratch").debug("user error", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except LostRankError as err:  # from the launcher: a spawned process died
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    return 0

