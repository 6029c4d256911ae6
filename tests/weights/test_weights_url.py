"""MODEL.WEIGHTS as an http(s) URL, against a real HTTP server on 127.0.0.1: downloaded once into
detectron2's cache (FVCORE_CACHE), atomically, then read by the project's one safe loader; offline,
404 and interrupted downloads end in one clear error; the COCO configs name the official weights;
an official mmdet COCO checkpoint URL evaluates through --eval-only with its heads loaded."""
from __future__ import annotations

import io
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import torch

from helpers.shapes import REPO, TINY_TRAINING_OVERRIDES, make_tiny_shapes
from swin_scratch.models import SwinTransformer, load_swin_checkpoint
from swin_scratch.weights.files import CheckpointError, cached_path_for_url, download_weights, read_checkpoint

OFFICIAL_RELEASE = "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/"
TINY_SWIN = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.0)


class WeightsServer:
    """Serves in-memory files; ``/cut/...`` paths announce the full length but send half, then hang up."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                body = server.files.get(self.path.removeprefix("/cut"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path.startswith("/cut/") else body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serving(files: dict[str, bytes]) -> Iterator[WeightsServer]:
    server = WeightsServer(files)
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


def saved_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def imagenet_file(model: SwinTransformer) -> bytes:
    return saved_bytes({"model": model.state_dict(), "epoch": 300})


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "fvcore_cache"
    monkeypatch.setenv("FVCORE_CACHE", str(folder))
    return folder


def test_url_weights_are_downloaded_once_into_the_cache_and_then_load_offline(cache):
    source = SwinTransformer(**TINY_SWIN, num_classes=10)
    with serving({"/release/swin_tiny.pth": imagenet_file(source)}) as server:
        url = f"{server.url}/release/swin_tiny.pth"
        first = SwinTransformer(**TINY_SWIN, num_classes=10)
        load_swin_checkpoint(first, url)
        assert server.requests == ["/release/swin_tiny.pth"]
    cached = cached_path_for_url(url)
    assert cached.is_file() and cache in cached.parents  # iopath's layout under FVCORE_CACHE

    second = SwinTransformer(**TINY_SWIN, num_classes=10)
    load_swin_checkpoint(second, url)  # the server is gone: only the cache can answer
    for key, value in source.state_dict().items():
        assert torch.equal(first.state_dict()[key], value), key
        assert torch.equal(second.state_dict()[key], value), key


def test_an_interrupted_download_is_an_error_and_never_counts_as_cached(cache):
    body = imagenet_file(SwinTransformer(**TINY_SWIN, num_classes=10))
    with serving({"/w.pth": body}) as server:
        with pytest.raises(CheckpointError, match=r"interrupted after \d+ of \d+ bytes.*cached at"):
            download_weights(f"{server.url}/cut/w.pth")
        assert not [path for path in cache.rglob("*") if path.is_file()], "a partial file was left in the cache"
        assert set(read_checkpoint(f"{server.url}/w.pth")) == {"model", "epoch"}  # a later full download works


def test_a_missing_url_ends_the_tool_in_one_error_line_naming_url_cache_and_ways_on(cache, tmp_path):
    with serving({}) as server:
        url = f"{server.url}/nope/swin_tiny_patch4_window7_224.pth"
        result = subprocess.run(
            [sys.executable, str(REPO / "tools/convert_swin_checkpoint.py"), url, str(tmp_path / "out.pth"),
             "--config", "swin_shapes.yaml"],
            capture_output=True, text=True, timeout=300,
        )
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert url in error[0] and "HTTP 404" in error[0]
    assert str(cached_path_for_url(url)) in error[0]
    assert "MODEL.WEIGHTS" in error[0] and 'MODEL.WEIGHTS ""' in error[0]
    assert not (tmp_path / "out.pth").exists()


def test_an_unreachable_server_is_the_same_one_line_error(cache):
    with serving({}) as server:
        url = f"{server.url}/w.pth"
    with pytest.raises(CheckpointError, match=r"no connection.*cached at .*w\.pth.*MODEL\.WEIGHTS"):
        download_weights(url)


@pytest.mark.parametrize(
    "config, release_file",
    [
        ("swin_coco.yaml", "swin_tiny_patch4_window7_224.pth"),
        ("mask_rcnn_swin_t_fpn_3x.yaml", "swin_tiny_patch4_window7_224.pth"),
        ("mask_rcnn_swin_t_fpn_1x.yaml", "swin_tiny_patch4_window7_224.pth"),
        ("mask_rcnn_swin_s_fpn_3x.yaml", "swin_small_patch4_window7_224.pth"),
        ("faster_rcnn_swin_t_fpn_3x.yaml", "swin_tiny_patch4_window7_224.pth"),
        ("retinanet_swin_t_fpn_3x.yaml", "swin_tiny_patch4_window7_224.pth"),
        ("cascade_mask_rcnn_swin_t_fpn_3x.yaml", "swin_tiny_patch4_window7_224.pth"),
        ("cascade_mask_rcnn_swin_s_fpn_3x.yaml", "swin_small_patch4_window7_224.pth"),
        ("cascade_mask_rcnn_swin_b_fpn_3x.yaml", "swin_base_patch4_window7_224.pth"),
        ("mask_rcnn_swin_v2_t_fpn_3x.yaml", "swinv2_tiny_patch4_window8_256.pth"),
        ("cascade_mask_rcnn_swin_v2_s_fpn_3x.yaml", "swinv2_small_patch4_window8_256.pth"),
        ("cascade_mask_rcnn_swin_v2_b_fpn_3x.yaml", "swinv2_base_patch4_window8_256.pth"),
    ],
)
def test_every_coco_config_starts_from_the_official_imagenet_weights_of_its_variant(config, release_file):
    from swin_scratch.detection.config import get_swin_cfg

    cfg = get_swin_cfg(config)
    version = 2 if release_file.startswith("swinv2") else 1
    release = OFFICIAL_RELEASE.replace("v1.0.0", "v2.0.0") if version == 2 else OFFICIAL_RELEASE
    assert cfg.MODEL.WEIGHTS == release + release_file and cfg.MODEL.SWIN.VERSION == version
    variant = {"tiny": (96, [2, 2, 6, 2]), "small": (96, [2, 2, 18, 2]), "base": (128, [2, 2, 18, 2])}
    embed_dim, depths = variant[release_file.split("_")[1]]
    assert (cfg.MODEL.SWIN.EMBED_DIM, list(cfg.MODEL.SWIN.DEPTHS)) == (embed_dim, depths)


def mmdet_coco_checkpoint(model) -> dict:
    """The official detection repo's layout, written out by hand from a detectron2 model's tensors."""
    d2 = model.state_dict()
    swin_prefix = "backbone.bottom_up.swin."
    state = {"backbone." + key[len(swin_prefix):]: value for key, value in d2.items() if key.startswith(swin_prefix)}
    for level in range(4):
        for kind in ("weight", "bias"):
            state[f"neck.lateral_convs.{level}.conv.{kind}"] = d2[f"backbone.fpn_lateral{level + 2}.{kind}"]
            state[f"neck.fpn_convs.{level}.conv.{kind}"] = d2[f"backbone.fpn_output{level + 2}.{kind}"]
    for kind in ("weight", "bias"):
        state[f"rpn_head.rpn_conv.{kind}"] = d2[f"proposal_generator.rpn_head.conv.{kind}"]
        state[f"rpn_head.rpn_cls.{kind}"] = d2[f"proposal_generator.rpn_head.objectness_logits.{kind}"]
        state[f"rpn_head.rpn_reg.{kind}"] = d2[f"proposal_generator.rpn_head.anchor_deltas.{kind}"]
        state[f"roi_head.bbox_head.shared_fcs.0.{kind}"] = d2[f"roi_heads.box_head.fc1.{kind}"]
        state[f"roi_head.bbox_head.shared_fcs.1.{kind}"] = d2[f"roi_heads.box_head.fc2.{kind}"]
        state[f"roi_head.bbox_head.fc_cls.{kind}"] = d2[f"roi_heads.box_predictor.cls_score.{kind}"]
        state[f"roi_head.bbox_head.fc_reg.{kind}"] = d2[f"roi_heads.box_predictor.bbox_pred.{kind}"]
        for conv in range(4):
            state[f"roi_head.mask_head.convs.{conv}.conv.{kind}"] = d2[f"roi_heads.mask_head.mask_fcn{conv + 1}.{kind}"]
        state[f"roi_head.mask_head.upsample.{kind}"] = d2[f"roi_heads.mask_head.deconv.{kind}"]
        state[f"roi_head.mask_head.conv_logits.{kind}"] = d2[f"roi_heads.mask_head.predictor.{kind}"]
    return {"meta": {"epoch": 36}, "state_dict": state}


@pytest.mark.slow
def test_an_official_mmdet_coco_checkpoint_url_evaluates_with_every_head_loaded(cache, tmp_path):
    from detectron2.modeling import build_model

    from swin_scratch.detection.checkpointer import SwinCheckpointer
    from swin_scratch.detection.config import get_swin_cfg

    # the official detection repo's Mask R-CNN: one box stage (the demo config's own heads are a cascade)
    mask_rcnn = ["MODEL.ROI_HEADS.NAME", "StandardROIHeads", "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "False"]
    overrides = [*TINY_TRAINING_OVERRIDES, *mask_rcnn, "MODEL.WEIGHTS", ""]
    torch.manual_seed(1)
    source = build_model(get_swin_cfg("swin_shapes.yaml", overrides))
    checkpoint = mmdet_coco_checkpoint(source)
    shapes = make_tiny_shapes(tmp_path / "shapes")
    with serving({"/v1.0.2/mask_rcnn_swin_tiny_patch4_window7.pth": saved_bytes(checkpoint)}) as server:
        url = f"{server.url}/v1.0.2/mask_rcnn_swin_tiny_patch4_window7.pth"
        torch.manual_seed(2)
        target = build_model(get_swin_cfg("swin_shapes.yaml", overrides))
        SwinCheckpointer(target).load(url)
        loaded = target.state_dict()
        for key, value in source.state_dict().items():
            if key.endswith(("relative_position_index", "attn_mask")) or "cell_anchors" in key:
                continue
            assert torch.equal(loaded[key], value), f"{key} was not loaded from the mmdet file"

        result = subprocess.run(
            [sys.executable, str(REPO / "tools/train_net.py"), "--config", "swin_shapes.yaml", "--eval-only",
             *TINY_TRAINING_OVERRIDES, *mask_rcnn, "MODEL.WEIGHTS", url, "DATASETS.SHAPES_ROOT", str(shapes),
             "OUTPUT_DIR", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=600,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "Loaded Swin weights into the backbone" in log and "layout mmdet-official" in log
    assert "Evaluation results for bbox" in log and "Evaluation results for segm" in log


def test_training_a_real_dataset_from_random_init_says_so_in_one_warning_line(capsys):
    from swin_scratch.detection.config import get_swin_cfg
    from swin_scratch.engine.train import warn_if_training_from_scratch

    warn_if_training_from_scratch(get_swin_cfg("swin_coco.yaml", ["MODEL.WEIGHTS", ""]))
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: MODEL.WEIGHTS is empty")
    assert "coco_2017_train" in warning[0]
    for quiet in (get_swin_cfg("swin_coco.yaml"), get_swin_cfg("swin_shapes.yaml")):  # weights named; the demo
        warn_if_training_from_scratch(quiet)
        assert capsys.readouterr().err == ""
