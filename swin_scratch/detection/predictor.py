"""One image in, ``Instances`` out: detectron2's ``DefaultPredictor`` with the project's weights loader."""
from __future__ import annotations

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor

from swin_scratch.detection.checkpointer import build_model_for_inference


class SwinPredictor(DefaultPredictor):
    """``DefaultPredictor``'s preprocessing (test-size resize, BGR input, format flip) and call.

    Differs only in how weights arrive: through :class:`SwinCheckpointer` (``weights_only``
    loading, URLs, official Swin layouts, clear errors) instead of a plain ``DetectionCheckpointer``.
    """

    def __init__(self, cfg: CfgNode):  # noqa: D107 - sets the attributes DefaultPredictor.__call__ reads
        self.cfg = cfg.clone()
        self.model = build_model_for_inference(self.cfg)
        self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0]) if len(cfg.DATASETS.TEST) else None
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        assert self.input_format in ("RGB", "BGR"), self.input_format
