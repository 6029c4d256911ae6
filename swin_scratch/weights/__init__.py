"""Weights files and checkpoint layouts, in one place: reading, downloading and atomically writing
files (:mod:`.files`), translating Swin checkpoints into the model (:mod:`.swin`), and renaming the
heads of official mmdet detectors (:mod:`.mmdet`). No detectron2 here: the detectron2 checkpointer
(:mod:`swin_scratch.detection.checkpointer`) calls these."""
