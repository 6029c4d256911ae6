"""detectron2's RoIAlign layers, trained with swin_scratch's CPU gradient (``swin_scratch.layers.roi_align``).

The ROI heads' poolers (``ROIPooler.level_poolers``, one ``ROIAlign`` per FPN level) are where a
CPU training step spends a quarter of its time, in torchvision's single-threaded RoIAlign backward.
:func:`use_fast_roi_align_grad` swaps those modules for :class:`FastGradROIAlign`: the same forward
(torchvision's op), the gradient from matrix products. Nothing in the weights, outputs or export
changes; the trainers (``Trainer.build_model``, the LazyConfig loop) apply it to the model they train.
"""
from __future__ import annotations

import torch
from detectron2.layers import ROIAlign
from torch import Tensor, nn
from torchvision.ops import roi_align as torchvision_roi_align

from swin_scratch.layers.roi_align import roi_align

__all__ = ["FastGradROIAlign", "use_fast_roi_align_grad"]


class FastGradROIAlign(ROIAlign):
    """detectron2's ``ROIAlign`` (same arguments, same output) whose input gradient on the CPU is
    :func:`swin_scratch.layers.roi_align.roi_align_input_grad`."""

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        assert rois.dim() == 2 and rois.size(1) == 5
        if input.is_quantized:
            input = input.dequantize()
        rois = rois.to(dtype=input.dtype)
        if torch.jit.is_scripting():
            return torchvision_roi_align(input, rois, self.output_size, self.spatial_scale,
                                         self.sampling_ratio, self.aligned)
        return self._differentiable(input, rois)

    @torch.jit.unused
    def _differentiable(self, input: Tensor, rois: Tensor) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)


def use_fast_roi_align_grad(model: nn.Module) -> int:
    """Replaces every detectron2 ``ROIAlign`` inside ``model`` by a :class:`FastGradROIAlign` with the
    same settings (in place); returns how many. Subclasses of ``ROIAlign`` are left as they are."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is ROIAlign:
                setattr(parent, name, FastGradROIAlign(child.output_size, child.spatial_scale,
                                                       child.sampling_ratio, child.aligned))
                replaced += 1
    return replaced
