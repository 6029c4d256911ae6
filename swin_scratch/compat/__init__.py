"""Compatibility with the detectron2 this project installs: every fix lives in ``detectron2_fixes``."""
