"""Mask R-CNN Swin-T FPN vs detectron2's Mask R-CNN R50-FPN on CPU: inference latency, training-step
time (interleaved in one process) and training peak memory (a fresh process per model)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from functools import partial

import torch
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.modeling import build_backbone, build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import swin_scratch.detection  # noqa: F401
from swin_scratch.benchmark.machine import describe_load, describe_machine
from swin_scratch.benchmark.timing import (
    MACHINE_FILE,
    MEASUREMENT_ENV,
    emit_report,
    interleaved_medians,
    markdown_table,
)
from swin_scratch.detection.config import get_swin_cfg
from swin_scratch.detection.poolers import use_fast_roi_align_grad
from swin_scratch.memory import reuse_freed_memory


def config(name: str):
    """Each model's COCO config with random weights, set so that both heads do the same work.

    With random weights the heads' load would depend on the backbone's random outputs: R50's
    caffe-style input (PIXEL_STD 1, made for the MSRA weights) blows its random activations up,
    every RPN box degenerates and its box head trains on the 5 ground-truth boxes alone (Swin's: 512
    proposals); at inference, scores of random heads fall under SCORE_THRESH_TEST and the mask head
    runs on no detection at all. So R50 gets the ImageNet std and both keep their top 100 detections,
    the load a trained model gives (the report prints both loads).
    """
    if name == "swin_t":
        cfg = get_swin_cfg("mask_rcnn_swin_t_fpn_3x.yaml", ["MODEL.DEVICE", "cpu"])
    else:
        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.WEIGHTS = ""
        cfg.MODEL.PIXEL_STD = [57.375, 57.120, 58.395]  # BGR
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    return cfg


def build(name: str):
    """The detector as the project's trainers build it (both alike: RoIAlign with the fast CPU gradient)."""
    model = build_model(config(name))
    use_fast_roi_align_grad(model)
    return model


# backbone alone (no FPN): Swin-T; ResNet-50 with its default freezing (stem + res2) and all stages trainable
BACKBONES = {"Swin-T": ("swin_t", None), "ResNet-50 (stem+res2 frozen, default)": ("r50", 2),
             "ResNet-50 (all stages trainable)": ("r50", 0)}


def build_backbone_alone(name: str, freeze_at: int | None):
    cfg = config(name)
    if name == "swin_t":
        cfg.MODEL.BACKBONE.NAME = "build_swin_backbone"
    else:
        cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    return build_backbone(cfg)


def backbone_rows(height: int, width: int, rounds: int) -> tuple[list[list[str]], dict[str, float]]:
    """Inference and forward+backward of each backbone alone on one image, interleaved: the table's rows
    and each backbone's inference seconds."""
    models = {label: build_backbone_alone(*spec) for label, spec in BACKBONES.items()}
    images = torch.rand(1, 3, height, width) * 255

    def infer(model):
        model.eval()
        with torch.inference_mode():
            model(images)

    def forward_backward(model):
        model.train()
        sum(feature.mean() for feature in model(images).values()).backward()
        model.zero_grad(set_to_none=True)

    latency = interleaved_medians({n: (lambda m=m: infer(m)) for n, m in models.items()}, rounds=rounds, warmup=1)
    step = interleaved_medians({n: (lambda m=m: forward_backward(m)) for n, m in models.items()},
                               rounds=rounds, warmup=1)
    swin = "Swin-T"
    return [[label, f"{latency[label] * 1000:.0f}", f"{step[label] * 1000:.0f}",
             "" if label == swin else f"{latency[swin] / latency[label]:.2f}",
             "" if label == swin else f"{step[swin] / step[label]:.2f}"] for label in models], latency


def training_batch(height: int, width: int, objects: int = 5):
    image = torch.randint(0, 255, (3, height, width), dtype=torch.uint8)
    instances = Instances((height, width))
    xy = torch.rand(objects, 2) * torch.tensor([width * 0.6, height * 0.6])
    wh = torch.rand(objects, 2) * 200 + 50
    instances.gt_boxes = Boxes(torch.cat([xy, xy + wh], dim=1))
    instances.gt_classes = torch.randint(0, 80, (objects,))
    masks = torch.zeros(objects, height, width, dtype=torch.bool)
    for k, (x0, y0, x1, y1) in enumerate(instances.gt_boxes.tensor.long().tolist()):
        masks[k, y0:y1, x0:x1] = True
    instances.gt_masks = BitMasks(masks)
    return [{"image": image, "instances": instances, "height": height, "width": width}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1216)
    parser.add_argument("--markdown", nargs="?", const=MACHINE_FILE, metavar="FILE.md",
                        help="also write the report to FILE.md; without a file, into its section of "
                             "docs/benchmarks/<machine>.md")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: one inference per model under torch.profiler, "
                        "top ops by self CPU time")
    args = parser.parse_args(argv)
    reuse_freed_memory()  # both models, as tools/train_net.py runs them
    machine = describe_machine(args.threads)
    print(machine.line(), flush=True)
    torch.manual_seed(0)
    if args.profile:
        emit_report(f"{machine.line()}\n\n{inference_profiles(args.height, args.width)}", args.markdown, machine,
                    "detector profile")
        return 0
    models = {name: build(name) for name in ("swin_t", "r50")}
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in models.items()}
    image = torch.randint(0, 255, (3, args.height, args.width), dtype=torch.uint8)
    inputs = [{"image": image, "height": args.height, "width": args.width}]

    def infer(model):
        model.eval()
        with torch.inference_mode():
            return len(model(inputs)[0]["instances"])

    latency = interleaved_medians({n: (lambda m=m: infer(m)) for n, m in models.items()}, rounds=args.rounds, warmup=1)

    batch = training_batch(args.height, args.width)

    def train_step(model):
        model.train()
        with EventStorage(0) as storage:
            losses = model(batch)
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)
        return sum(storage.history(f"roi_head/num_{kind}_samples").latest() for kind in ("fg", "bg"))

    load = {n: f"{train_step(m):.0f} / {infer(m)}" for n, m in models.items()}

    step = interleaved_medians({n: (lambda m=m: train_step(m)) for n, m in models.items()},
                               rounds=max(2, args.rounds // 2), warmup=1)
    memory = {name: training_peak_rss_mib(name, args) for name in models}
    as_run = {name: training_peak_rss_mib(name, args, live_tensors_only=False) for name in models}
    rows = [
        ["Mask R-CNN Swin-T FPN", f"{params['swin_t']:.1f}", load["swin_t"], f"{latency['swin_t'] * 1000:.0f}",
         f"{step['swin_t'] * 1000:.0f}", f"{memory['swin_t']:.0f}", f"{as_run['swin_t']:.0f}"],
        ["Mask R-CNN R50-FPN (detectron2)", f"{params['r50']:.1f}", load["r50"], f"{latency['r50'] * 1000:.0f}",
         f"{step['r50'] * 1000:.0f}", f"{memory['r50']:.0f}", f"{as_run['r50']:.0f}"],
        ["ratio Swin-T / R50", "", "", f"{latency['swin_t'] / latency['r50']:.2f}",
         f"{step['swin_t'] / step['r50']:.2f}", f"{memory['swin_t'] / memory['r50']:.2f}",
         f"{as_run['swin_t'] / as_run['r50']:.2f}"],
    ]
    backbones, backbone_latency = backbone_rows(args.height, args.width, args.rounds)
    r50 = "ResNet-50 (stem+res2 frozen, default)"
    goals = [
        ["detector inference ≤ 1.05 × R50-FPN", f"{latency['swin_t'] / latency['r50']:.2f}",
         latency["swin_t"] / latency["r50"] <= 1.05],
        ["detector train step ≤ 1.15 × R50-FPN", f"{step['swin_t'] / step['r50']:.2f}",
         step["swin_t"] / step["r50"] <= 1.15],
        ["detector train peak RSS ≤ 1.4 × R50-FPN (live tensors)", f"{memory['swin_t'] / memory['r50']:.2f}",
         memory["swin_t"] / memory["r50"] <= 1.4],
        ["detector train peak RSS ≤ 1.4 × R50-FPN (as the tools run)", f"{as_run['swin_t'] / as_run['r50']:.2f}",
         as_run["swin_t"] / as_run["r50"] <= 1.4],
        ["backbone alone inference ≤ 1.2 × ResNet-50", f"{backbone_latency['Swin-T'] / backbone_latency[r50]:.2f}",
         backbone_latency["Swin-T"] / backbone_latency[r50] <= 1.2],
    ]
    goal_rows = [[goal, measured, "met" if ok else "**not met**"] for goal, measured, ok in goals]
    report = (
        f"{machine.line()}\n\n"
        f"CPU, fp32, input {args.height}x{args.width}, median of {args.rounds} interleaved rounds\n\n"
        + markdown_table(["model", "params (M)", "head load: train ROIs / detections", "inference (ms)",
                          "train step (ms)", "train peak RSS, live tensors (MiB)",
                          "train peak RSS, as the tools run (MiB)"], rows)
        + "\n\nBackbone alone (no FPN), batch 1, same input\n\n"
        + markdown_table(["backbone", "inference (ms)", "forward+backward (ms)", "Swin-T ÷ this, inference",
                          "Swin-T ÷ this, forward+backward"], backbones)
        + "\n\nWhere Swin-T's training memory goes (modules keeping < 1% not shown; every block's part is summed)\n\n"
        + kept_for_backward_table(args.height, args.width)
        + "\n\nGoals (issue 25; floors to compare with, not asserted)\n\n"
        + markdown_table(["goal", "measured", "status"], goal_rows)
        + f"\n\nload average (1 min) at the end: {describe_load()}\n"
    )
    emit_report(report, args.markdown, machine, "detector: Mask R-CNN Swin-T FPN vs R50-FPN")
    return 0


def inference_profiles(height: int, width: int, top: int = 12) -> str:
    """Top ops by self CPU time of one inference of each model, with the Python lines that called them."""
    image = torch.randint(0, 255, (3, height, width), dtype=torch.uint8)
    inputs = [{"image": image, "height": height, "width": width}]
    sections = []
    for name in ("swin_t", "r50"):
        model = build(name).eval()
        with torch.inference_mode():
            model(inputs)  # warm-up
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_stack=True) as prof:
                model(inputs)
        table = prof.key_averages(group_by_stack_n=3).table(sort_by="self_cpu_time_total", row_limit=top,
                                                            max_name_column_width=40)
        sections.append(f"### {name}, inference {height}x{width}\n\n```\n{table}\n```\n")
    return "\n".join(sections)


def kept_for_backward_table(height: int, width: int) -> str:
    """What the Swin-T backbone keeps for backward in one training forward, by the module that kept it
    (unique storages, parameters excluded): the activation memory behind the train peak RSS."""
    model = build_backbone_alone("swin_t", None).train()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, tuple[str, int]] = {}
    running = ["(outside the stages)"]  # the innermost module running, named by its part of a block
    for name, module in model.named_modules():
        if name:
            tail = name.split("blocks.")[-1].split(".", 1) if "blocks." in name else ["", name.split(".")[-1]]
            part = tail[1] if len(tail) > 1 and tail[1] else "block (window gathers, residual adds)"
            part = {"attn": "attn (attention core: q·k, softmax, ·v)",
                    "mlp": "mlp (fc1 output, for the GELU)"}.get(part, part)
            module.register_forward_pre_hook(partial(_enter, running, part))
            module.register_forward_hook(partial(_leave, running))
            if hasattr(module, "attend"):  # the blocks call the attention core as attn.attend(), not attn()
                module.attend = _attributed(module.attend, running, part)

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            kept.setdefault(storage.data_ptr(), (running[-1], storage.nbytes()))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(torch.rand(1, 3, height, width) * 255)
    by_part: dict[str, int] = {}
    for part, size in kept.values():
        by_part[part] = by_part.get(part, 0) + size
    total = sum(by_part.values())
    rows = [[part, f"{size / 2**20:.0f}", f"{100 * size / total:.0f}%"]
            for part, size in sorted(by_part.items(), key=lambda item: -item[1]) if size >= total / 100]
    return markdown_table([f"Swin-T backbone, kept for backward ({total / 2**20:.0f} MiB in all)", "MiB", "share"],
                          rows)


def _attributed(method, running: list[str], part: str):
    """``method`` with ``part`` as the running part while it runs (module hooks only see ``module()`` calls)."""
    def attributed(*args, **kwargs):
        running.append(part)
        try:
            return method(*args, **kwargs)
        finally:
            running.pop()
    return attributed


def _enter(running: list[str], part: str, module, inputs) -> None:
    running.append(part)


def _leave(running: list[str], module, inputs, output) -> None:
    running.pop()


def training_peak_rss_mib(name: str, args, live_tensors_only: bool = True) -> float:
    """Peak RSS of a fresh process that builds the model and runs two training steps: with glibc
    unmapping every freed block (the peak of live tensors), or under the tools' memory policy."""
    code = (
        "import sys, torch; sys.argv = ['x']\n"
        f"torch.set_num_threads({args.threads}); torch.manual_seed(0)\n"
        "from swin_scratch.benchmark.detection import build, training_batch\n"
        "from swin_scratch.benchmark.timing import peak_rss_mib\n"
        "from swin_scratch.memory import reuse_freed_memory\nfrom detectron2.utils.events import EventStorage\n"
        + ("" if live_tensors_only else "reuse_freed_memory()\n")
        + f"m = build({name!r}).train(); b = training_batch({args.height}, {args.width})\n"
        "for _ in range(2):\n"
        "    with EventStorage(0):\n        losses = m(b)\n"
        "    sum(losses.values()).backward(); m.zero_grad(set_to_none=True)\n"
        "print(peak_rss_mib())\n"
    )
    env = {**os.environ, **(MEASUREMENT_ENV if live_tensors_only else {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])

