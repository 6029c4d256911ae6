"""Where datasets live on disk: one place for the root that every dataset module resolves against.

Its own module because both the generator (:mod:`.shapes`) and the detectron2 registration
(:mod:`swin_scratch.detection.datasets`) need it, and the registration imports the generator's layout.
"""
from __future__ import annotations

import os
from pathlib import Path


def datasets_root() -> Path:
    """detectron2's convention: ``$DETECTRON2_DATASETS``, else ``./datasets``."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


def default_shapes_root() -> Path:
    return datasets_root() / "shapes"
