"""What ``swin-train`` and ``tools/train_net.py`` do, importable so tests can drive it: YAML configs
here, LazyConfig ``.py`` recipes through :mod:`.lazy_train`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from swin_scratch.coco.errors import DatasetFormatError, DatasetNotFoundError
from swin_scratch.detection.checkpoint_classes import CHECKPOINT_KEY, TrainingClasses
from swin_scratch.detection.checkpointer import SwinCheckpointer
from swin_scratch.detection.config import ConfigError, resolve_config_path
from swin_scratch.detection.dataset_checks import check_datasets_available
from swin_scratch.detection.datasets import register_config_datasets
from swin_scratch.detection.tool_config import tool_config
from swin_scratch.engine.accumulation import check_batch_split
from swin_scratch.engine.interruptions import LostRankError, StopRequest, deliver_deferred_stop_signals
from swin_scratch.engine.launch import launch, planned_world_size, torchrun_restart_count
from swin_scratch.engine.lazy_train import check_lazy_inputs, load_lazy_config, run_lazy
from swin_scratch.engine.slurm import SlurmEnvironmentError, slurm_task_from_env
from swin_scratch.engine.trainer import Trainer, TrainingDivergedError
from swin_scratch.memory import reuse_freed_memory
from swin_scratch.precision import PrecisionError, autocast, check_precision, device_type_of
from swin_scratch.weights.files import CheckpointError

# Mistakes a user can fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, DatasetNotFoundError, DatasetFormatError, CheckpointError, TrainingDivergedError,
               PrecisionError, SlurmEnvironmentError)
# command-line option (argparse dest) -> the config key it sets
DATASET_OPTIONS = {
    "train_json": "DATASETS.TRAIN_JSON",
    "train_images": "DATASETS.TRAIN_IMAGES",
    "test_json": "DATASETS.TEST_JSON",
    "test_images": "DATASETS.TEST_IMAGES",
}


def build_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser(
        epilog="Examples:\n"
        "  python tools/train_net.py --config swin_coco.yaml --num-gpus 8\n"
        "  python tools/train_net.py --config swin_shapes.yaml SOLVER.MAX_ITER 200\n"
        "  python tools/train_net.py --config swin_coco.yaml --eval-only MODEL.WEIGHTS model_final.pth\n"
        "  python tools/train_net.py --config swin_coco.yaml --train-json my/train.json --test-json my/val.json\n"
        "  swin-train --config mask_rcnn_swin_t_fpn_3x.py --num-gpus 8 train.max_iter=1000   # a LazyConfig\n"
        "--num-gpus N with MODEL.DEVICE cpu starts N CPU processes (gloo); so does MODEL.DEVICE cuda\n"
        "(the default) on a machine without a GPU, after a warning.\n"
        "Under torchrun, the process group comes from torchrun's environment."
    )
    # detectron2's default is a fixed port (49152 for uid 0): concurrent jobs on one machine collide.
    # "auto": single-machine processes meet through a temp file (swin_scratch.engine.launch).
    parser.set_defaults(dist_url="auto")
    parser.add_argument(
        "--config", dest="config_file", metavar="NAME_OR_PATH",
        help="config path, or a bare name such as swin_coco.yaml looked up among the package's configs "
        "(swin_scratch/configs/; ./configs in a clone)",
    )
    data = parser.add_argument_group(
        "your own COCO-format data (same as the DATASETS.TRAIN_JSON / TRAIN_IMAGES / TEST_JSON / TEST_IMAGES keys)"
    )
    for split, use in (("train", "train"), ("test", "evaluate")):
        data.add_argument(f"--{split}-json", metavar="JSON", help=f"COCO instances file to {use} on")
        data.add_argument(f"--{split}-images", metavar="DIR",
                          help="folder the JSON's file_names are relative to (default: the JSON's folder)")
    return parser


def dataset_overrides(args: argparse.Namespace) -> list[str]:
    """The --train-json/--test-json/... options as the config overrides they stand for."""
    overrides = []
    for option, key in DATASET_OPTIONS.items():
        value = getattr(args, option, None)
        if value:
            overrides += [key, value]
    return overrides


def setup(args: argparse.Namespace, cfg: CfgNode) -> CfgNode:
    """One process's set-up from the launching process's config: the datasets registered again
    (registries are per process), then detectron2's default_setup (logging, seeding, config.yaml)."""
    cfg = cfg.clone()
    register_config_datasets(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def check_inputs(args: argparse.Namespace, world_size: int = 1) -> CfgNode:
    """Parse and complete the config, and check its datasets and how its batch splits over the
    ``world_size`` processes of the job, in the launching process before any worker starts;
    warnings and notices are printed here, once."""
    cfg = tool_config(args.config_file, [*args.opts, *dataset_overrides(args)])
    if not args.eval_only:
        keep_batch_as_given_if_not_scalable(cfg)
        check_batch_split(cfg, world_size)  # ACCUMULATE_STEPS >= 1, and the batch divides into the job
    names = list(cfg.DATASETS.TEST) if args.eval_only else list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    device_type = device_type_of(cfg.MODEL.DEVICE)
    if args.eval_only:
        check_precision(cfg.TEST.PRECISION, device_type, source="TEST.PRECISION")
    elif cfg.SOLVER.AMP.ENABLED:
        check_precision(cfg.SOLVER.AMP.PRECISION, device_type, source="SOLVER.AMP.PRECISION")
    check_datasets_available(names)
    if not args.eval_only:
        warn_if_training_from_scratch(cfg)
    return cfg


def keep_batch_as_given_if_not_scalable(cfg: CfgNode) -> None:
    """detectron2 scales batch, lr and schedule from SOLVER.REFERENCE_WORLD_SIZE processes to the real
    count, and asserts the batch divides evenly; a batch set by hand that does not is used as given."""
    reference = cfg.SOLVER.REFERENCE_WORLD_SIZE
    if reference and cfg.SOLVER.IMS_PER_BATCH % reference:
        print(
            f"notice: SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH} is not a multiple of "
            f"SOLVER.REFERENCE_WORLD_SIZE {reference}: batch, lr and schedule are used as given (no scaling)",
            file=sys.stderr,
        )
        cfg.SOLVER.REFERENCE_WORLD_SIZE = 0


def warn_if_training_from_scratch(cfg: CfgNode) -> None:
    """One line when a real (non-demo) dataset is trained from random initialization."""
    real_datasets = [name for name in cfg.DATASETS.TRAIN if not name.startswith("shapes_")]
    if not cfg.MODEL.WEIGHTS and real_datasets:
        print(
            f"warning: MODEL.WEIGHTS is empty: training on {', '.join(real_datasets)} from random initialization; "
            "the official recipe starts from ImageNet weights (the COCO configs name their URL)",
            file=sys.stderr,
        )


def restart_count() -> int:
    """How often a scheduler has restarted this job: torchrun (--max-restarts) or SLURM (a requeue)."""
    return max(torchrun_restart_count(), int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0))


def resumes(args: argparse.Namespace, cfg: CfgNode) -> bool:
    """Whether training continues from OUTPUT_DIR's newest readable checkpoint: asked for (--resume,
    SOLVER.AUTO_RESUME), or a restart, which nobody can add --resume to."""
    restarts = restart_count()
    if restarts and not args.resume and comm.is_main_process():
        print(f"notice: restart {restarts} of this job: resuming from the newest readable checkpoint in "
              f"{cfg.OUTPUT_DIR}", file=sys.stderr, flush=True)
    return bool(args.resume or cfg.SOLVER.AUTO_RESUME or restarts)


def run(args: argparse.Namespace, cfg: CfgNode) -> dict[str, Any] | None:
    """The per-process body: train (or evaluate) and return the evaluation results."""
    reuse_freed_memory()  # per process: spawned ranks start a fresh interpreter
    cfg = setup(args, cfg)
    if args.eval_only:
        deliver_deferred_stop_signals()  # no checkpoint to save: a stop signal ends evaluation
        model = Trainer.build_model(cfg)
        SwinCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        with autocast(cfg.TEST.PRECISION, device_type_of(cfg.MODEL.DEVICE)):
            results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    # The stop handlers are in place before the loader's workers start (with the Trainer), and a
    # signal that arrives before training starts still ends in a checkpoint (after iteration one).
    stop_request = StopRequest()
    with stop_request.installed():
        trainer = Trainer(cfg, stop_request=stop_request)
        trainer.checkpointer.add_checkpointable(CHECKPOINT_KEY, TrainingClasses(cfg.DATASETS.TRAIN[0]))
        trainer.resume_or_load(resume=resumes(args, cfg))
        return trainer.train()


def is_lazy_config(path: str) -> bool:
    """``.py`` configs are LazyConfig recipes (:mod:`.lazy_train`); the others detectron2 YAML."""
    return str(path).endswith(".py")


def run_reporting_errors(args: argparse.Namespace, cfg: Any) -> dict[str, Any] | None:
    """:func:`run` (or :func:`.lazy_train.run_lazy`), printing an error as one line in the process that met
    it (a spawned process has no other way to report it without a traceback) and ending that process
    with its exit status."""
    try:
        return (run_lazy if is_lazy_config(args.config_file) else run)(args, cfg)
    except USER_ERRORS + (LostRankError,) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(getattr(err, "exit_status", 2)) from None


def launcher_flags_given(args: argparse.Namespace) -> bool:
    """Whether the command line says how to start the job (then SLURM's environment is not used:
    e.g. one srun task per node that spawns ``--num-gpus 8`` processes with ``--num-machines``)."""
    return (args.num_gpus, args.num_machines, args.machine_rank, args.dist_url) != (1, 1, 0, "auto")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.config_file:
        print("error: give a config: --config NAME_OR_PATH (e.g. swin_shapes.yaml)", file=sys.stderr)
        return 2
    if args.num_machines > 1 and args.dist_url == "auto":
        print("error: --num-machines > 1 needs --dist-url tcp://HOST:PORT naming machine 0", file=sys.stderr)
        return 2
    try:
        # detectron2's default_setup reads the file again by path: give it the resolved one
        args.config_file = str(resolve_config_path(args.config_file))
        slurm = None if launcher_flags_given(args) else slurm_task_from_env()
        if is_lazy_config(args.config_file):
            cfg = check_lazy_inputs(args, load_lazy_config(args.config_file, args.opts))
            use_cuda = str(cfg.train.device).startswith("cuda")
        else:
            cfg = check_inputs(args, planned_world_size(args.num_gpus, args.num_machines, slurm))
            use_cuda = str(cfg.MODEL.DEVICE).startswith("cuda")
        launch(
            run_reporting_errors,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args, cfg),
            use_cuda=use_cuda,
            slurm=slurm,
        )
    except USER_ERRORS as err:
        logging.getLogger("swin_scratch").debug("user error", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except LostRankError as err:  # from the launcher: a spawned process died
        print(f"error: {err}", file=sys.stderr)
        return err.exit_status
    return 0

