"""The shipped configs, installed with the package: detectron2 YAML (``Base-Swin-RCNN-FPN.yaml`` + short
children) and LazyConfig recipes (``*.py``). Read them through :mod:`swin_scratch.model_zoo`; a clone
also reaches them as ``configs/`` (a link to this folder)."""
