"""``add_swin_config``: the config keys this plugin adds to detectron2's defaults."""
from __future__ import annotations

from pathlib import Path

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg
from detectron2.modeling import META_ARCH_REGISTRY, ROI_HEADS_REGISTRY

from swin_scratch.detection.meta_arch import MaskBoxRCNN
from swin_scratch.detection.roi_heads import (
    ClassAgnosticNMSCascadeROIHeads,
    ClassAgnosticNMSMixin,
    ClassAgnosticNMSROIHeads,
)

# The shipped configs: package data (swin_scratch/configs/, installed with the wheel); a clone's
# top-level configs/ is a link to this folder.
CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIG_SUFFIXES = (".yaml", ".py")  # detectron2 YAML and LazyConfig recipes


def add_swin_config(cfg: CN) -> None:
    """Add ``MODEL.SWIN``, the AdamW/no-decay optimizer keys and the crop-branch augmentation keys."""
    cfg.MODEL.SWIN = CN()
    cfg.MODEL.SWIN.VERSION = 1  # 1: Swin Transformer; 2: Swin V2 (cosine attention, continuous position bias)
    # V2 only: per stage, the window size the weights were pre-trained with (0: the same as WINDOW_SIZE);
    # fine-tuning at a larger window keeps the learned position bias function (e.g. [8, 8, 8, 8] for 16)
    cfg.MODEL.SWIN.PRETRAINED_WINDOW_SIZES = [0, 0, 0, 0]
    cfg.MODEL.SWIN.PATCH_SIZE = 4  # patch embedding conv: kernel = stride = PATCH_SIZE
    cfg.MODEL.SWIN.EMBED_DIM = 96  # channels of stage 1; doubles at every patch merging
    cfg.MODEL.SWIN.DEPTHS = [2, 2, 6, 2]  # Swin blocks per stage (Swin-T)
    cfg.MODEL.SWIN.NUM_HEADS = [3, 6, 12, 24]  # attention heads per stage (head_dim 32)
    cfg.MODEL.SWIN.WINDOW_SIZE = 7  # M: tokens per window side; shifted blocks shift by M // 2
    cfg.MODEL.SWIN.MLP_RATIO = 4.0  # MLP hidden width = MLP_RATIO * channels
    cfg.MODEL.SWIN.QKV_BIAS = True  # bias in the fused q/k/v projection
    cfg.MODEL.SWIN.DROP_PATH_RATE = 0.2  # stochastic depth, linearly increasing to this rate
    cfg.MODEL.SWIN.APE = False  # absolute position embedding (off in all official models)
    cfg.MODEL.SWIN.PRETRAIN_IMG_SIZE = 224  # image size the APE was trained at (used only with APE)
    cfg.MODEL.SWIN.PATCH_NORM = True  # LayerNorm after the patch embedding
    # stage2..stage5 have strides 4, 8, 16, 32 (named like ResNet's res2..res5)
    cfg.MODEL.SWIN.OUT_FEATURES = ["stage2", "stage3", "stage4", "stage5"]  # stages the backbone returns
    cfg.MODEL.SWIN.FROZEN_STAGES = -1  # -1: train all; 0: freeze patch embedding; k: also stages < k
    cfg.MODEL.SWIN.USE_CHECKPOINT = False  # activation checkpointing: less memory, ~25% slower
    # torch.compile the Swin backbone (one graph, dynamic sizes); the first iterations pay the compile
    cfg.MODEL.SWIN.COMPILE = False
    cfg.MODEL.SWIN.COMPILE_BACKEND = "inductor"  # torch.compile backend; "aot_eager" traces without codegen

    # Mixed precision: SOLVER.AMP.ENABLED (detectron2's key) trains under autocast(SOLVER.AMP.PRECISION):
    # "bf16" on CPU or GPU, "fp16" on GPU only (with a grad scaler). See swin_scratch/engine/mixed_precision.py.
    cfg.SOLVER.AMP.PRECISION = "bf16"
    # Inference precision of --eval-only: "fp32", "bf16" (CPU or GPU) or "fp16" (GPU)
    cfg.TEST.PRECISION = "fp32"

    # Test time: after the per-class NMS, an NMS across classes (same NMS_THRESH_TEST IoU) keeps one box
    # per object, the highest-scoring one. Needs ROI_HEADS.NAME "ClassAgnosticNMSROIHeads" (or its cascade
    # variant "ClassAgnosticNMSCascadeROIHeads"). Off: detectron2's
    # behaviour (COCO AP counts a second, lower-scored class guess on an object as a chance, not a duplicate).
    cfg.MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS = False
    # Test time: each post-processed box becomes (1 - w) * box + w * the tight box of its pasted mask
    # (masks unchanged). Needs META_ARCHITECTURE "MaskBoxRCNN" and MASK_ON. 0: detectron2's boxes.
    cfg.MODEL.ROI_MASK_HEAD.MASK_BOX_WEIGHT = 0.0

    # Optimizer (official Swin detection recipe: AdamW, lr 1e-4, wd 0.05, betas 0.9/0.999)
    cfg.SOLVER.OPTIMIZER = "AdamW"  # "AdamW" or "SGD" (detectron2's default optimizer)
    cfg.SOLVER.BETAS = (0.9, 0.999)  # AdamW betas
    # Parameters whose name contains one of these get no weight decay, besides norms and biases
    cfg.SOLVER.NO_WEIGHT_DECAY_KEYS = ["relative_position_bias_table", "absolute_pos_embed"]
    # Stop training when a loss is NaN/inf instead of writing checkpoints with NaN weights
    cfg.SOLVER.STOP_ON_NONFINITE_LOSS = True
    # Periodic checkpoints kept in OUTPUT_DIR (older ones are deleted; model_final is never deleted).
    # 0 keeps all (detectron2's behaviour). Keep at least 2: --resume falls back to the newest
    # readable earlier checkpoint when the latest one is damaged or missing.
    cfg.SOLVER.CHECKPOINT_KEEP = 0
    # Gradient accumulation (swin_scratch/engine/accumulation.py): micro-batches per optimizer step.
    # One iteration reads ACCUMULATE_STEPS micro-batches per process and steps once; IMS_PER_BATCH stays
    # the images per iteration (the effective batch = per micro-batch x processes x ACCUMULATE_STEPS),
    # so a recipe's batch, LR and schedule hold with fewer GPUs. REFERENCE_WORLD_SIZE scaling counts
    # processes x ACCUMULATE_STEPS. 1 = no accumulation.
    cfg.SOLVER.ACCUMULATE_STEPS = 1
    # Resume from OUTPUT_DIR's newest readable checkpoint, if any, as --resume does (e.g. for a job that
    # a scheduler requeues with the same command). Restarts by torchrun (TORCHELASTIC_RESTART_COUNT > 0)
    # and requeued SLURM jobs (SLURM_RESTART_COUNT > 0) always resume, whatever this says.
    cfg.SOLVER.AUTO_RESUME = False

    # Official multi-scale recipe: with probability PROB, resize the short side to one of
    # PRE_RESIZE_SIZES, take a random absolute crop of CROP_SIZE (h, w ranges), then do the usual
    # multi-scale resize (INPUT.MIN_SIZE_TRAIN / MAX_SIZE_TRAIN).
    cfg.INPUT.CROP_BRANCH = CN()
    cfg.INPUT.CROP_BRANCH.ENABLED = False
    cfg.INPUT.CROP_BRANCH.PROB = 0.5
    cfg.INPUT.CROP_BRANCH.PRE_RESIZE_SIZES = [400, 500, 600]
    cfg.INPUT.CROP_BRANCH.CROP_SIZE = [384, 600]

    # Datasets: where tools/train_net.py looks; shapes_* are the built-in demo datasets
    cfg.DATASETS.SHAPES_ROOT = ""  # "" = $DETECTRON2_DATASETS/shapes or ./datasets/shapes
    # Your own COCO-format data, no code (swin_scratch.detection.datasets; same as --train-json etc.):
    # a set TRAIN_JSON / TEST_JSON is registered with detectron2 under a name derived from its folder
    # and file name (my/train.json -> "my_train") and replaces DATASETS.TRAIN / DATASETS.TEST;
    # NUM_CLASSES (ROI heads and RetinaNet) comes from its categories.
    cfg.DATASETS.TRAIN_JSON = ""  # COCO instances JSON to train on
    cfg.DATASETS.TRAIN_IMAGES = ""  # folder its file_names are relative to; "" = the JSON's folder
    cfg.DATASETS.TEST_JSON = ""  # COCO instances JSON to evaluate on (same categories as TRAIN_JSON)
    cfg.DATASETS.TEST_IMAGES = ""  # "" = the JSON's folder


class ConfigError(ValueError):
    """A config file or override that detectron2 rejects; the message names the file/key and the fix."""


def shipped_config_names() -> list[str]:
    """The config files installed with the package (``swin_coco.yaml``, ``mask_rcnn_swin_t_fpn_3x.py``, ...)."""
    return sorted(p.name for p in CONFIGS_DIR.iterdir() if p.suffix in CONFIG_SUFFIXES and p.name != "__init__.py")


def resolve_config_path(name_or_path: str) -> Path:
    """A path as given, else a bare name such as ``swin_coco.yaml`` looked up among the package's configs."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = CONFIGS_DIR / name_or_path
    if candidate.is_file() and candidate.name != "__init__.py":
        return candidate
    raise ConfigError(
        f"config file not found: {name_or_path!r} (looked at {path.resolve()} and {candidate}); "
        f"the package ships: {', '.join(shipped_config_names())}"
    )


def get_swin_cfg(config: str | None = None, overrides: list[str] | None = None) -> CN:
    """detectron2's defaults + the Swin keys, merged with a config file and KEY VALUE overrides."""
    cfg = get_cfg()
    add_swin_config(cfg)
    source = "command-line overrides"
    try:
        if config:
            source = str(resolve_config_path(config))
            cfg.merge_from_file(source)
        if overrides:
            source = "command-line overrides"
            if len(overrides) % 2:
                raise ValueError(f"overrides must be KEY VALUE pairs, got an odd count: {list(overrides)}")
            cfg.merge_from_list(list(overrides))
    except ConfigError:
        raise
    except (KeyError, ValueError, TypeError, AssertionError) as err:
        message = str(err.args[0]) if err.args else repr(err)
        raise ConfigError(
            f"{source}: {message}. Check the key's spelling against detectron2's defaults and "
            "swin_scratch.detection.config.add_swin_config"
        ) from None
    except Exception as err:  # YAML syntax errors and the like
        raise ConfigError(f"{source}: cannot read config: {type(err).__name__}: {err}") from None
    check_class_agnostic_nms(cfg, source)
    check_mask_box_weight(cfg, source)
    return cfg


def check_class_agnostic_nms(cfg: CN, source: str) -> None:
    """Refuse ``MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS`` with ROI heads that cannot apply it (the key would
    otherwise change nothing without a word)."""
    if not cfg.MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS:
        return
    name = cfg.MODEL.ROI_HEADS.NAME
    heads = ROI_HEADS_REGISTRY.get(name) if name in ROI_HEADS_REGISTRY else None
    if not (isinstance(heads, type) and issubclass(heads, ClassAgnosticNMSMixin)):
        raise ConfigError(
            f"{source}: MODEL.ROI_HEADS.CLASS_AGNOSTIC_NMS True needs MODEL.ROI_HEADS.NAME "
            f"'{ClassAgnosticNMSROIHeads.__name__}' or '{ClassAgnosticNMSCascadeROIHeads.__name__}' "
            f"(or a subclass of either), got {name!r}"
        )


def check_mask_box_weight(cfg: CN, source: str) -> None:
    """Refuse ``MODEL.ROI_MASK_HEAD.MASK_BOX_WEIGHT`` outside [0, 1], or non-zero where no meta-architecture
    or mask head can apply it."""
    weight = cfg.MODEL.ROI_MASK_HEAD.MASK_BOX_WEIGHT
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"{source}: MODEL.ROI_MASK_HEAD.MASK_BOX_WEIGHT must be in [0, 1], got {weight}")
    if weight == 0.0:
        return
    name = cfg.MODEL.META_ARCHITECTURE
    arch = META_ARCH_REGISTRY.get(name) if name in META_ARCH_REGISTRY else None
    if not (isinstance(arch, type) and issubclass(arch, MaskBoxRCNN)):
        raise ConfigError(
            f"{source}: MODEL.ROI_MASK_HEAD.MASK_BOX_WEIGHT {weight} needs MODEL.META_ARCHITECTURE "
            f"'{MaskBoxRCNN.__name__}' (or a subclass), got {name!r}; set the weight to 0 otherwise"
        )
    if not cfg.MODEL.MASK_ON:
        raise ConfigError(
            f"{source}: MODEL.ROI_MASK_HEAD.MASK_BOX_WEIGHT {weight} needs MODEL.MASK_ON True (the boxes "
            "are blended with the predicted masks); set the weight to 0 otherwise"
        )
