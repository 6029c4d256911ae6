"""detectron2's checkpointer on the project's one reader/writer (:mod:`swin_scratch.weights.files`).

Saves never leave a half-written file; ``MODEL.WEIGHTS`` may be a path or an ``http(s)://`` URL, and
may name official Swin weights (ImageNet or mmdet COCO layouts), which are translated on load.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import DefaultTrainer
from detectron2.utils import comm

from swin_scratch.detection.backbone import swin_key_prefix, swin_module
from swin_scratch.weights.files import CheckpointError, atomic_write_bytes, local_weights_path, read_checkpoint
from swin_scratch.weights.layouts import state_dict_tensors
from swin_scratch.weights.mmdet import is_mmdet_detector, mmdet_heads_to_detectron2
from swin_scratch.weights.swin import (
    LoadReport,
    bias_table_window,
    load_swin_checkpoint,
    resize_relative_position_bias_table,
    variant_mismatch_error,
)

logger = logging.getLogger(__name__)


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, file too large, no permission); nothing was replaced."""


def write_failure_cause(err: BaseException) -> str:
    """The OS-level reason behind a failed write (torch.save wraps it in a RuntimeError), else the error."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return f"{cause.strerror} (errno {cause.errno})"
        cause = cause.__cause__ or cause.__context__
    return (str(err).splitlines() or [type(err).__name__])[0][:200]


CHECKPOINT_NAME = re.compile(r"^model_(\d+|final)\.pth$")


def _iteration_order(path: str) -> float:
    number = CHECKPOINT_NAME.match(os.path.basename(path)).group(1)
    return float("inf") if number == "final" else int(number)


def _first_clause(err: BaseException) -> str:
    return str(err).split(". ")[0].split("; ")[0]


def _warn(message: str) -> None:
    """One ``warning:`` line on stderr, from the main process only."""
    if comm.is_main_process():
        print(f"warning: {message}", file=sys.stderr, flush=True)
    logger.warning(message)


class SwinCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer with atomic saves, ``weights_only`` loading and official-Swin import.

    ``MODEL.WEIGHTS`` may name an official ImageNet Swin checkpoint or an official mmdet COCO
    checkpoint: its backbone weights are translated by :func:`load_swin_checkpoint` (window-size
    resizing included) into the Swin inside the model.
    """

    resumed_from: Optional[str] = None  # the checkpoint a resume loaded; None: started from MODEL.WEIGHTS
    _read_ahead: Optional[tuple[str, dict[str, Any]]] = None  # a file read while choosing it, not read twice

    def resume_or_load(self, path: str, *, resume: bool = True) -> dict[str, Any]:
        """Resume from ``last_checkpoint``'s file or, if that one is missing or damaged, from the newest
        readable earlier checkpoint in the folder (one warning line says which); with none readable,
        start from ``path`` (``MODEL.WEIGHTS``) as a fresh run, saying so."""
        self.resumed_from = None
        if not (resume and self.has_checkpoint()):
            return self.load(path, checkpointables=[])
        named = self.get_checkpoint_file()
        problems: list[str] = []
        for candidate in self._resume_candidates(named):
            try:
                self._read_ahead = (candidate, self._load_file(candidate))
            except CheckpointError as err:
                problems.append(f"{os.path.basename(candidate)}: {_first_clause(err)}")
                continue
            self._check_written_for_this_model(candidate, self._read_ahead[1])
            if problems:
                _warn(f"the latest checkpoint is not usable ({'; '.join(problems)}); resuming from {candidate} instead")
            self.resumed_from = candidate
            return self.load(candidate)
        _warn(f"no usable checkpoint in {self.save_dir} ({'; '.join(problems)}); starting a fresh run from "
              f"MODEL.WEIGHTS ({path or 'random initialization'}) at iteration 0")
        return self.load(path, checkpointables=[])

    def _check_written_for_this_model(self, candidate: str, loaded: dict[str, Any]) -> None:
        """A resume continues the run that wrote the folder: a checkpoint of another model (the config
        changed since, e.g. other ROI heads) would leave part of the model untrained and fail later in
        the optimizer's state, so it is one error instead."""
        if "__foreign_swin__" in loaded:
            return  # not this checkpointer's file: translated into the backbone, never a resume of this model
        saved = set(loaded.get("model", {}))
        expected = set(self.model.state_dict())
        missing, unexpected = sorted(expected - saved), sorted(saved - expected)
        if not (missing or unexpected):
            return
        differences = [f"{len(keys)} {what}, e.g. {keys[0]}" for keys, what in
                       ((missing, "of this model's weights missing"), (unexpected, "weights this model does not have"))
                       if keys]
        raise CheckpointError(
            f"cannot resume from {candidate}: it was written by another model ({'; '.join(differences)}), so the "
            f"config changed since that run. Resume with the config that wrote {self.save_dir} (its config.yaml), "
            "or start this config afresh in another OUTPUT_DIR (or after deleting that folder)"
        )

    def _resume_candidates(self, named: str) -> list[str]:
        """``named`` first, then the folder's other ``model_*.pth`` files, newest (highest iteration) first."""
        others = [os.path.join(self.save_dir, name) for name in os.listdir(self.save_dir)
                  if CHECKPOINT_NAME.match(name)]
        others.sort(key=_iteration_order, reverse=True)
        return [named] + [other for other in others if os.path.abspath(other) != os.path.abspath(named)]

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        try:
            atomic_write_bytes(save_file, lambda handle: torch.save(data, handle))
            self.tag_last_checkpoint(basename)
        except (OSError, RuntimeError) as err:
            raise self._write_error(basename, err) from None

    def _write_error(self, basename: str, err: BaseException) -> CheckpointWriteError:
        previous = self.get_checkpoint_file() if self.has_checkpoint() else None
        kept = (f"the previous checkpoint {previous} and last_checkpoint are unchanged" if previous
                else "nothing was written")
        return CheckpointWriteError(
            f"cannot write checkpoint {basename} in {self.save_dir}: {write_failure_cause(err)}; {kept}. Free space "
            "(or allow writing) there, or set OUTPUT_DIR to another folder after copying it, then resume with --resume"
        )

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Point ``last_checkpoint`` at a file that is already complete on disk."""
        target = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write_bytes(target, lambda handle: handle.write(last_filename_basename.encode()))

    def load(self, path: str, checkpointables=None) -> dict[str, Any]:
        if path:
            path = str(local_weights_path(path))  # a missing file or failed download: CheckpointError
        return super().load(path, checkpointables=checkpointables)

    def _load_file(self, filename: str) -> dict[str, Any]:
        if self._read_ahead is not None and self._read_ahead[0] == filename:
            loaded, self._read_ahead = self._read_ahead[1], None
            return loaded
        loaded = read_checkpoint(filename)
        if self._is_foreign_swin(loaded):
            return {"model": loaded, "__foreign_swin__": filename}
        if "model" not in loaded:
            loaded = {"model": loaded}
        return loaded

    def _is_foreign_swin(self, loaded: dict[str, Any]) -> bool:
        """A file not in this model's own keys (not written by this checkpointer) while the model has a
        Swin: weights from another codebase, translated by :func:`load_swin_checkpoint`."""
        if swin_module(self.model) is None:
            return False
        prefix = swin_key_prefix(self.model)
        state = loaded.get("model", loaded)
        return not (isinstance(state, dict) and any(key.startswith(prefix) for key in state))

    def _load_model(self, checkpoint: dict[str, Any]):
        source = checkpoint.pop("__foreign_swin__", None)
        if source is not None:
            return self._load_foreign_swin(checkpoint["model"], source)
        self._fit_backbone_shapes(checkpoint["model"])
        return super()._load_model(checkpoint)

    def _load_foreign_swin(self, loaded: dict[str, Any], source: str):
        """Swin weights of any layout fill the backbone; a whole detector's file (mmdet, another detectron2
        Swin port) also fills FPN, RPN and heads under their detectron2 names."""
        swin = swin_module(self.model)
        try:
            report = load_swin_checkpoint(swin, loaded)
        except CheckpointError as err:
            raise CheckpointError(f"MODEL.WEIGHTS {source}: {err}") from None
        self.logger.info(f"Loaded Swin weights into the backbone from {source}: {report}")
        heads = self._detector_heads(state_dict_tensors(loaded), report)
        if not heads:
            return None
        prefix = swin_key_prefix(self.model)
        weights = {**{prefix + key: value for key, value in swin.state_dict().items()}, **heads}
        return super()._load_model({"model": weights, "__author__": report.layout, "matching_heuristics": False})

    def _detector_heads(self, tensors: dict[str, Any], report: LoadReport) -> dict[str, Any]:
        """The neck and heads of a detector file under this model's names; a warning names what has none."""
        if is_mmdet_detector(tensors):
            heads, unmapped = mmdet_heads_to_detectron2(tensors)
        else:  # detectron2 ports name FPN, RPN and ROI heads as detectron2 does
            model_keys = self.model.state_dict()
            heads = {key: tensors[key] for key in report.left_out if key in model_keys and key in tensors}
            unmapped = [key for key in report.left_out if key not in heads]
        if unmapped:
            self.logger.warning(
                f"{len(unmapped)} tensors outside the backbone have no counterpart in this model and were not "
                f"loaded: {', '.join(unmapped[:6])}{' ...' if len(unmapped) > 6 else ''}"
            )
        return heads

    def _fit_backbone_shapes(self, weights: dict[str, Any]) -> None:
        """Resize bias tables of another window size; refuse backbone weights of another variant.

        (fvcore would skip mismatched tensors with only a warning, leaving a silently random backbone.)
        """
        model_state = self.model.state_dict()
        # Swin's own keys first: the first mismatch reported is the most telling one
        for key, value in sorted(weights.items(), key=lambda item: ".swin." not in item[0]):
            target = model_state.get(key)
            shape = tuple(getattr(value, "shape", ()))
            if target is None or shape == tuple(target.shape) or not key.startswith("backbone."):
                continue
            if key.endswith("relative_position_bias_table") and shape[1:] == tuple(target.shape[1:]):
                window = bias_table_window(target.shape[0])
                weights[key] = resize_relative_position_bias_table(torch.as_tensor(value), window)
                self.logger.info(f"resized {key} {shape} -> {tuple(target.shape)} (other window size)")
                continue
            raise variant_mismatch_error(key, shape, target.shape, "use the config it was trained with")


def build_model_for_inference(cfg):
    """A model in eval mode with ``MODEL.WEIGHTS`` loaded (through the Swin-aware checkpointer)."""
    model = DefaultTrainer.build_model(cfg)
    SwinCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    model.eval()
    return model
