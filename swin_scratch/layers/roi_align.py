"""RoIAlign whose input gradient is a few matrix products on the CPU, instead of torchvision's serial loop.

torchvision's CPU ``roi_align`` backward visits every (RoI, channel, bin, sample) in one thread and
recomputes the sample's bilinear weights for each channel; in a detector's training step on 2 cores
it is a quarter of the time (tools/benchmark_detection.py --profile; a Cascade R-CNN pools four times).
The forward is cheap and stays torchvision's, bit for bit; only the gradient is computed here.

The gradient is separable. A sample at (y, x) spreads its weight over the 2 x 2 pixels around it as
``wy(h) * wx(w)``, and whether it counts at all (inside ``[-1, H] x [-1, W]``) is a product of two
per-axis conditions. So for one RoI the output is ``Ay @ X @ Ax^T``: ``Ay`` (bins, rows) holds, for each
output row, the averaged bilinear weights of its samples over the feature rows, ``Ax`` the same for
columns. The input gradient is then ``Ay^T @ dY @ Ax`` over the rows and columns the RoI touches: two
batched matrix products per group of RoIs of similar size, and one ``index_add_`` of channel rows into
a channels-last gradient (vectorized over channels, where torchvision adds one float at a time).

Same arithmetic as torchvision's kernel (``aligned`` shift, adaptive ``sampling_ratio <= 0``, samples
outside the map dropped, clamped at the border), summed in another order: equal to it in float64, to
rounding in float32 (tests/layers/test_roi_align.py).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torchvision.ops import roi_align as torchvision_roi_align

__all__ = ["roi_align", "roi_align_input_grad"]


def roi_align(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """``torchvision.ops.roi_align`` (input (N, C, H, W), rois (R, 5) as (image index, x1, y1, x2, y2)
    -> (R, C, PH, PW)) whose input gradient on the CPU comes from :func:`roi_align_input_grad`.

    Where nothing will be differentiated (no grad, tracing, scripting) or the input is not on the CPU it
    is torchvision's op itself, so export and CUDA see no difference."""
    if (input.device.type != "cpu" or not input.requires_grad or not torch.is_grad_enabled()
            or torch.jit.is_tracing() or torch.jit.is_scripting()):
        return torchvision_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)
    return _RoIAlign.apply(input, rois, tuple(output_size), float(spatial_scale), int(sampling_ratio), bool(aligned))


class _RoIAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.arguments = (tuple(input.shape), input.dtype, spatial_scale, sampling_ratio, aligned)
        return torchvision_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor):
        (rois,) = ctx.saved_tensors
        input_shape, dtype, spatial_scale, sampling_ratio, aligned = ctx.arguments
        grad_input = roi_align_input_grad(grad_output, rois, input_shape, spatial_scale, sampling_ratio, aligned)
        return grad_input.to(dtype), None, None, None, None, None


def roi_align_input_grad(grad_output: Tensor, rois: Tensor, input_shape: tuple[int, int, int, int],
                         spatial_scale: float, sampling_ratio: int, aligned: bool) -> Tensor:
    """The gradient of ``roi_align(input, rois, ...)`` with respect to ``input`` (shape ``input_shape``,
    (N, C, H, W)), given the output's gradient (R, C, PH, PW). Float64 stays float64, anything else is
    computed in float32. Returns (N, C, H, W), channels-last in memory."""
    n, channels, height, width = input_shape
    count, _, pooled_h, pooled_w = grad_output.shape
    compute_dtype = torch.float64 if grad_output.dtype == torch.float64 else torch.float32
    grad = torch.zeros(n * height * width, channels, dtype=compute_dtype, device=grad_output.device)
    if count:
        rois = rois.to(compute_dtype)
        grad_output = grad_output.to(compute_dtype)
        rows = _AxisSamples(rois[:, 2], rois[:, 4], pooled_h, height, spatial_scale, sampling_ratio, aligned)
        cols = _AxisSamples(rois[:, 1], rois[:, 3], pooled_w, width, spatial_scale, sampling_ratio, aligned)
        image = rois[:, 0].long()
        # one pair of products per group of RoIs whose window (rows x columns touched) has the same
        # power-of-two size: padding a small RoI to the largest one's window would cost quadratically
        window = torch.maximum(rows.span, cols.span)
        group = torch.ceil(torch.log2(window.to(torch.float32))).long()
        for size_class in torch.unique(group).tolist():
            members = torch.nonzero(group == size_class).squeeze(1)
            size = int(window[members].max())
            _add_window_grads(grad, grad_output[members], image[members], rows.take(members, size),
                              cols.take(members, size), height, width)
    return grad.view(n, height, width, channels).permute(0, 3, 1, 2)


def _add_window_grads(grad: Tensor, grad_output: Tensor, image: Tensor, rows: tuple[Tensor, Tensor],
                      cols: tuple[Tensor, Tensor], height: int, width: int) -> None:
    """Adds ``Ay^T @ dY @ Ax`` of each RoI into ``grad`` (N*H*W, C) at the window it touches.
    rows: (Ay (R, PH, K), first row (R,)); cols: (Ax (R, PW, K), first column (R,))."""
    (weight_y, first_row), (weight_x, first_col) = rows, cols
    count, channels, pooled_h, pooled_w = grad_output.shape
    size = weight_y.shape[2]
    # dY @ Ax: (R, C*PH, PW) @ (R, PW, K) -> (R, C, PH, K) -> (R, PH, K*C)
    per_col = torch.bmm(grad_output.reshape(count, channels * pooled_h, pooled_w), weight_x)
    per_col = per_col.view(count, channels, pooled_h, size).permute(0, 2, 3, 1)
    per_col = per_col.reshape(count, pooled_h, size * channels)
    # Ay^T @ that: (R, K, PH) @ (R, PH, K*C) -> (R, K rows, K cols, C), channels last like grad's rows
    window = torch.bmm(weight_y.transpose(1, 2), per_col)
    offsets = torch.arange(size, device=grad.device)
    # window positions past the map's edge carry zero weight; clamping keeps their (zero) adds in bounds
    row = (first_row[:, None] + offsets).clamp(max=height - 1)  # (R, K)
    col = (first_col[:, None] + offsets).clamp(max=width - 1)
    pixel = (image[:, None, None] * height + row[:, :, None]) * width + col[:, None, :]  # (R, K, K)
    grad.index_add_(0, pixel.reshape(-1), window.reshape(-1, channels))


class _AxisSamples:
    """Where one axis of every RoI's bins samples the feature map, as torchvision's kernel computes it.

    For RoI r, bin p and sample i (of ``grid[r]``, the samples per bin along this axis), the sample lies
    between map positions ``low`` and ``high`` with weights ``(1 - frac, frac)``, scaled by ``1 / grid``
    (the average over the bin's samples) and zeroed where the sample falls outside ``[-1, size]``.
    ``first`` is the lowest position any of the RoI's samples touches, ``span`` how many positions from
    there it touches."""

    def __init__(self, start: Tensor, end: Tensor, pooled: int, size: int, spatial_scale: float,
                 sampling_ratio: int, aligned: bool) -> None:
        offset = 0.5 if aligned else 0.0
        start = start * spatial_scale - offset  # (R,)
        length = end * spatial_scale - offset - start
        if not aligned:
            length = length.clamp(min=1.0)  # the legacy RoIAlign forces RoIs to at least 1 pixel
        bin_size = length / pooled
        if sampling_ratio > 0:
            grid = torch.full_like(start, sampling_ratio, dtype=torch.long)
        else:
            grid = torch.ceil(length / pooled).long()  # adaptive: about one sample per pixel
        samples = max(int(grid.max()), 1)
        bins = torch.arange(pooled, dtype=start.dtype, device=start.device)
        steps = torch.arange(samples, dtype=start.dtype, device=start.device)
        per_bin = grid.clamp(min=1).to(start.dtype)
        position = (start[:, None, None] + bins[None, :, None] * bin_size[:, None, None]
                    + (steps[None, None, :] + 0.5) * (bin_size / per_bin)[:, None, None])  # (R, P, S)
        counts = (steps[None, None, :] < grid[:, None, None]) & (position >= -1.0) & (position <= size)
        position = position.clamp(min=0.0)
        low = position.floor().long()
        at_edge = low >= size - 1  # torchvision puts these samples exactly on the last pixel
        low = low.clamp(max=size - 1)
        self.high = torch.where(at_edge, low, low + 1)
        self.frac = torch.where(at_edge, torch.zeros_like(position), position - low.to(position.dtype))
        self.low = low
        self.scale = counts.to(position.dtype) / per_bin[:, None, None]
        self.first = low.amin(dim=(1, 2))
        self.span = self.high.amax(dim=(1, 2)) - self.first + 1
        self.pooled = pooled

    def take(self, members: Tensor, size: int) -> tuple[Tensor, Tensor]:
        """For the RoIs ``members``: their weights over a window of ``size`` positions from ``first``,
        (R', P, size), and ``first`` (R',)."""
        first = self.first[members]
        low = self.low[members] - first[:, None, None]
        high = self.high[members] - first[:, None, None]
        frac, scale = self.frac[members], self.scale[members]
        weight = torch.zeros(len(members), self.pooled, size, dtype=frac.dtype, device=frac.device)
        weight.scatter_add_(2, low, (1.0 - frac) * scale)
        weight.scatter_add_(2, high, frac * scale)
        return weight, first
