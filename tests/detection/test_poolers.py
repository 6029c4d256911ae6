"""The trainers' detectors pool RoIs with FastGradROIAlign: same outputs and weights as detectron2's
ROIAlign, the same gradients, computed by swin_scratch's CPU kernel."""
from __future__ import annotations

import copy

import torch
from detectron2.layers import ROIAlign
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

import swin_scratch.detection  # noqa: F401  (registers the backbones and ROI heads)
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.detection.poolers import FastGradROIAlign, use_fast_roi_align_grad
from swin_scratch.engine.trainer import Trainer


def shapes_cfg():
    return get_swin_cfg("swin_shapes.yaml", ["MODEL.SWIN.DEPTHS", "[1, 1, 1, 1]"])


def training_batch():
    """Two images with one box each (a mask covering the box)."""
    from detectron2.structures import BitMasks, Boxes, Instances

    generator = torch.Generator().manual_seed(0)
    batch = []
    for box in ([20.0, 30.0, 90.0, 100.0], [50.0, 10.0, 140.0, 70.0]):
        instances = Instances((128, 160))
        instances.gt_boxes = Boxes(torch.tensor([box]))
        instances.gt_classes = torch.tensor([1])
        mask = torch.zeros(1, 128, 160, dtype=torch.bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        mask[:, y1:y2, x1:x2] = True
        instances.gt_masks = BitMasks(mask)
        image = (torch.rand(3, 128, 160, generator=generator) * 255).to(torch.uint8).float()
        batch.append({"image": image, "instances": instances, "height": 128, "width": 160})
    return batch


def test_the_trainers_model_has_every_roialign_replaced_and_the_same_weights():
    cfg = shapes_cfg()
    model = Trainer.build_model(cfg)
    poolers = [m for m in model.modules() if isinstance(m, ROIAlign)]
    # a box pooler (the cascade's three stages share it) and a mask pooler, one RoIAlign per FPN level
    assert len(poolers) == 8 and all(type(m) is FastGradROIAlign for m in poolers)
    torch.manual_seed(0)
    plain = build_model(cfg)
    assert model.state_dict().keys() == plain.state_dict().keys()


def test_a_training_step_gives_detectron2s_losses_and_gradients():
    torch.manual_seed(0)
    plain = build_model(shapes_cfg())
    fast = copy.deepcopy(plain)
    assert use_fast_roi_align_grad(fast) == 8
    results = []
    for model in (plain, fast):
        torch.manual_seed(1)  # the same proposal / RoI sampling in both
        with EventStorage(0):
            losses = model(training_batch())
        sum(losses.values()).backward()
        results.append((losses, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (plain_losses, plain_grads), (fast_losses, fast_grads) = results
    assert {k: v.item() for k, v in plain_losses.items()} == {k: v.item() for k, v in fast_losses.items()}
    assert plain_grads.keys() == fast_grads.keys()
    # the backbone's and FPN's gradients pass through RoIAlign's backward: equal to float32 rounding
    for name in plain_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert plain_grads["backbone.bottom_up.swin.patch_embed.proj.weight"].abs().sum() > 0


def test_an_roialign_subclass_is_left_alone_and_scripting_compiles_torchvisions_op():
    class Custom(ROIAlign):
        pass

    model = torch.nn.Sequential(ROIAlign((7, 7), 0.25, 2), Custom((7, 7), 0.25, 2))
    assert use_fast_roi_align_grad(model) == 1
    assert type(model[0]) is FastGradROIAlign and type(model[1]) is Custom
    scripted = torch.jit.script(model[0])
    features, rois = torch.randn(1, 4, 16, 16), torch.tensor([[0.0, 2.0, 3.0, 30.0, 25.0]])
    torch.testing.assert_close(scripted(features, rois), ROIAlign((7, 7), 0.25, 2)(features, rois))
