"""Every bridge between detectron2 versions, in one place: v0.6 (what PyPI's pb1-detectron2 carries,
the project's fallback install) and upstream main (a source install).

Each bridge is one small function that does the same thing on both versions; the table
:data:`BRIDGES` gives its reason and versions and is copied into ``docs/detectron2-bridges.md``
(a test keeps the two in step). Things both versions provide are used directly, not bridged:
``detectron2.engine.create_ddp_model`` (with ``device_ids=None`` it wraps CPU modules for gloo).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist
from detectron2.engine import DefaultTrainer, SimpleTrainer
from detectron2.utils import comm


@dataclass(frozen=True)
class Bridge:
    name: str
    reason: str
    versions: str
    used_in: str


BRIDGES = (
    Bridge(
        "create_local_process_group",
        "comm.get_local_rank() needs a process group of the ranks on this machine; upstream creates it with "
        "comm.create_local_process_group, v0.6 expects the launcher to set comm._LOCAL_PROCESS_GROUP",
        "v0.6: builds the groups itself; upstream main: calls comm.create_local_process_group",
        "swin_scratch/engine/launch.py",
    ),
    Bridge(
        "replace_data_loader",
        "a resumed run swaps in a loader that starts at the resumed iteration; v0.6's SimpleTrainer keeps an "
        "eager _data_loader_iter, upstream creates _data_loader_iter_obj lazily behind a property",
        "v0.6: sets _data_loader_iter; upstream main: resets _data_loader_iter_obj",
        "swin_scratch/engine/trainer.py (Trainer.resume_or_load)",
    ),
    Bridge(
        "save_inner_trainer_state / load_inner_trainer_state",
        "v0.6's DefaultTrainer does not checkpoint its inner SimpleTrainer (optimizer state), so a resumed run "
        "would restart AdamW with empty moments; upstream main saves and loads it as '_trainer'",
        "v0.6: adds and loads '_trainer'; upstream main: detectron2 does it, the bridge does nothing",
        "swin_scratch/engine/trainer.py (Trainer.state_dict / load_state_dict)",
    ),
    Bridge(
        "fpn_square_pad_supported",
        "ViTDet's LSJ recipe pads every batch to a 1024 x 1024 square through FPN(square_pad=...), an argument "
        "upstream main added; v0.6's FPN has none, so the recipe pads its training crops to the square instead",
        "v0.6: False (crops padded by FixedSizeCrop); upstream main: True (FPN square_pad)",
        "swin_scratch/configs/cascade_mask_rcnn_swin_b_in21k_50ep.py",
    ),
)


def fpn_square_pad_supported() -> bool:
    """Whether detectron2's ``FPN`` takes ``square_pad`` (pad each batch to a square of that side)."""
    from detectron2.modeling.backbone.fpn import FPN

    return "square_pad" in inspect.signature(FPN.__init__).parameters


def create_local_process_group(processes_per_machine: int) -> None:
    """Give detectron2's ``comm`` the group of ranks on this machine (``comm.get_local_rank()``)."""
    if hasattr(comm, "create_local_process_group"):  # upstream main
        comm.create_local_process_group(processes_per_machine)
        return
    world_size = dist.get_world_size()
    machine_rank = dist.get_rank() // processes_per_machine
    for machine in range(world_size // processes_per_machine):
        ranks = list(range(machine * processes_per_machine, (machine + 1) * processes_per_machine))
        group = dist.new_group(ranks)  # every rank creates every group (a collective)
        if machine == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group


def replace_data_loader(trainer: SimpleTrainer, loader: Any) -> None:
    """Make ``trainer`` read its next batches from ``loader``."""
    trainer.data_loader = loader
    if isinstance(getattr(type(trainer), "_data_loader_iter", None), property):  # upstream main
        trainer._data_loader_iter_obj = None
    else:
        trainer._data_loader_iter = iter(loader)


def _default_trainer_checkpoints_inner_trainer() -> bool:
    return "load_state_dict" in DefaultTrainer.__dict__  # upstream main overrides it to include '_trainer'


def save_inner_trainer_state(state: dict[str, Any], inner: SimpleTrainer) -> None:
    """Add the inner trainer's state (optimizer, grad scaler) to a DefaultTrainer ``state_dict``."""
    state.setdefault("_trainer", inner.state_dict())


def load_inner_trainer_state(state: dict[str, Any], inner: SimpleTrainer) -> None:
    """Load what :func:`save_inner_trainer_state` saved, where detectron2 does not do it itself."""
    if not _default_trainer_checkpoints_inner_trainer() and "_trainer" in state:
        inner.load_state_dict(state["_trainer"])
