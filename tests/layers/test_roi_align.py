"""RoIAlign with the matrix-product CPU gradient against torchvision's own backward (the oracle)."""
from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align as torchvision_roi_align

from swin_scratch.layers.roi_align import roi_align, roi_align_input_grad


def random_rois(count: int, images: int, height: int, width: int, scale: float, largest: float,
                dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """(count, 5) RoIs in input pixels: some partly or wholly off the map, of many sizes, one empty."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator, dtype=dtype) * torch.tensor([width, height]) / scale * 1.3 - 6
    size = torch.rand(count, 2, generator=generator, dtype=dtype) * largest
    image = torch.randint(0, images, (count, 1), generator=generator).to(dtype)
    rois = torch.cat([image, corner, corner + size], dim=1)
    rois[0, 3:] = rois[0, 1:3]  # zero width and height
    return rois


def gradients(input, rois, output_size, scale, sampling_ratio, aligned, seed=1):
    """(torchvision's input gradient, ours, both forwards) for one random output gradient."""
    reference_out = torchvision_roi_align(input, rois, output_size, scale, sampling_ratio, aligned)
    ours_out = roi_align(input, rois, output_size, scale, sampling_ratio, aligned)
    grad_output = torch.randn(reference_out.shape, generator=torch.Generator().manual_seed(seed), dtype=input.dtype)
    (reference,) = torch.autograd.grad(reference_out, input, grad_output)
    (ours,) = torch.autograd.grad(ours_out, input, grad_output)
    return reference, ours, reference_out, ours_out


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 1, 0])  # 0: adaptive, ceil(RoI size / bins) per bin
@pytest.mark.parametrize("output_size", [(7, 7), (14, 14), (3, 5)])
def test_the_input_gradient_is_torchvisions_in_float64(aligned, sampling_ratio, output_size):
    input = torch.randn(3, 4, 13, 17, dtype=torch.float64, requires_grad=True)
    # sizes from sub-pixel to twice the map: several window-size groups, RoIs wider than the map
    rois = random_rois(60, images=3, height=13, width=17, scale=0.25, largest=140)
    reference, ours, reference_out, ours_out = gradients(input, rois, output_size, 0.25, sampling_ratio, aligned)
    assert torch.equal(ours_out, reference_out)  # the forward is torchvision's op
    assert type(ours_out.grad_fn).__name__ == "_RoIAlignBackward"  # the gradient is ours
    assert reference.abs().sum() > 0
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)


def test_float32_matches_to_rounding_and_keeps_the_inputs_dtype():
    input = torch.randn(2, 64, 40, 48, requires_grad=True)
    rois = random_rois(128, images=2, height=40, width=48, scale=0.25, largest=90, dtype=torch.float32)
    reference, ours, _, _ = gradients(input, rois, (7, 7), 0.25, 2, True)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_under_cpu_autocast_the_bfloat16_input_gets_a_bfloat16_gradient_like_torchvisions():
    features = torch.randn(2, 8, 20, 24, requires_grad=True)
    rois = random_rois(30, images=2, height=20, width=24, scale=0.5, largest=30, dtype=torch.float32)
    results = []
    for op in (torchvision_roi_align, roi_align):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = features.to(torch.bfloat16)
            out = op(half, rois, (7, 7), 0.5, 2, True)
        (grad,) = torch.autograd.grad(out.float().square().sum(), features)
        results.append((out.dtype, grad))
    (reference_dtype, reference), (ours_dtype, ours) = results
    assert ours_dtype == reference_dtype == torch.bfloat16
    torch.testing.assert_close(ours, reference, rtol=2e-2, atol=2e-2)


def test_no_rois_give_a_zero_gradient_of_the_inputs_shape():
    grad = roi_align_input_grad(torch.zeros(0, 4, 7, 7), torch.zeros(0, 5), (2, 4, 9, 11), 0.5, 2, True)
    assert grad.shape == (2, 4, 9, 11) and not grad.any()


def test_where_nothing_is_differentiated_it_is_torchvisions_op_and_traces_to_it():
    input = torch.randn(1, 4, 16, 16)
    rois = torch.tensor([[0.0, 2.0, 3.0, 30.0, 25.0]])
    traced = torch.jit.trace(lambda x, r: roi_align(x, r, (7, 7), 0.5, 2, True), (input, rois))
    kinds = {node.kind() for node in traced.graph.nodes()}
    assert "torchvision::roi_align" in kinds and "prim::PythonOp" not in kinds
    torch.testing.assert_close(traced(input, rois), torchvision_roi_align(input, rois, (7, 7), 0.5, 2, True))
    with torch.no_grad():
        out = roi_align(input.requires_grad_(), rois, (7, 7), 0.5, 2, True)
    assert out.grad_fn is None
