"""The class names a detector was trained on, saved inside its checkpoints.

Why: a model trained on your own data (``--train-json``) has a number of classes and class names
that its config file does not state (``swin_coco.yaml`` implies COCO's 80). Saved beside the
weights, they let ``tools/demo.py --config swin_coco.yaml --weights model_final.pth`` build the
right heads and label its pictures with your names, with no extra option.
"""
from __future__ import annotations

import functools
import os
from typing import Any

from detectron2.data import MetadataCatalog

from swin_scratch.detection.datasets import set_num_classes
from swin_scratch.weights.files import read_checkpoint

CHECKPOINT_KEY = "dataset_classes"


class TrainingClasses:
    """An fvcore checkpointable: ``state_dict()`` is the training dataset's class names (and colors).

    Register it with ``checkpointer.add_checkpointable(CHECKPOINT_KEY, TrainingClasses(name))``.
    The names are read from detectron2's metadata at save time, when the dataset is loaded.
    """

    def __init__(self, dataset_name: str):
        self.dataset_name = dataset_name

    def state_dict(self) -> dict[str, Any]:
        metadata = MetadataCatalog.get(self.dataset_name)
        state: dict[str, Any] = {"dataset": self.dataset_name,
                                 "thing_classes": list(getattr(metadata, "thing_classes", []))}
        colors = getattr(metadata, "thing_colors", None)
        if colors:
            state["thing_colors"] = [list(color) for color in colors]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore on resume: the names come from the dataset being trained on."""


def classes_in_checkpoint(path_or_url: str | os.PathLike) -> dict[str, Any] | None:
    """The :class:`TrainingClasses` state saved in a checkpoint, or None (older files, other sources).

    A tool asks twice (to size the heads, then to label pictures): a file unchanged since it was
    read is not read again.
    """
    path = str(path_or_url)
    stat = os.stat(path) if os.path.isfile(path) else None
    return _read_classes(path, (stat.st_mtime_ns, stat.st_size) if stat else None)


@functools.lru_cache(maxsize=4)
def _read_classes(path: str, version: tuple[int, int] | None) -> dict[str, Any] | None:
    state = read_checkpoint(path).get(CHECKPOINT_KEY)
    if isinstance(state, dict) and state.get("thing_classes"):
        return state
    return None


def use_checkpoint_classes(cfg: Any, weights: str | os.PathLike) -> dict[str, Any] | None:
    """Set an unfrozen ``cfg``'s NUM_CLASSES from the classes saved in ``weights`` (a notice if it
    changes); returns them, or None when the checkpoint has none."""
    stored = classes_in_checkpoint(weights)
    if stored:
        set_num_classes(cfg, stored["thing_classes"], f"the checkpoint {weights}")
    return stored
