"""swin_scratch: a from-scratch Swin Transformer backbone for detectron2.

detectron2 itself is not on PyPI; ``make setup`` (or
``python -m swin_scratch.compat.install_detectron2``) installs it after this package.
"""
from pathlib import Path

from setuptools import find_packages, setup

# Runtime dependencies; tests/test_environment.py checks environment.yml names the same ones.
INSTALL_REQUIRES = [
    "torch>=2.1",
    "torchvision>=0.16",
    "fvcore>=0.1.5",
    "pycocotools>=2.0.7",
    "opencv-python-headless>=4.8",
    "numpy>=1.24",
    "Pillow>=10.0",
    "matplotlib>=3.7",
    "PyYAML>=6.0",
    "tqdm>=4.66",
    "shapely>=2.0",  # detectron2 crops polygon masks with it (the official random-crop branch)
    "safetensors>=0.4",  # timm / Hugging Face weights files (.safetensors): tensors only, no code
]

EXTRAS_REQUIRE = {
    # timm's, torchvision's and HF transformers' Swin are independent reference oracles for the tests only.
    "test": ["pytest>=8.0", "pytest-xdist>=3.5", "hypothesis>=6.100", "timm>=1.0", "transformers>=4.40",
             "onnx>=1.16", "onnxruntime>=1.18", "ruff>=0.6"],
    "export": ["onnx>=1.16", "onnxruntime>=1.18"],
    "faster-eval": ["faster-coco-eval>=1.6"],
}

setup(
    name="swin_scratch",
    version="0.1.0",
    description="From-scratch Swin Transformer for detectron2 (COCO detection / instance segmentation) "
    "and text Transformer/RNN modules sharing one attention kernel",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["swin_scratch", "swin_scratch.*"]),
    # The configs are package data (swin_scratch/configs/; the clone's configs/ links to it): --config NAME
    # and swin_scratch.model_zoo find them in an installed wheel. The .py recipes ship as modules of
    # the swin_scratch.configs package.
    package_data={"swin_scratch.configs": ["*.yaml"]},
    # The tools/ scripts as commands of an installed package (each is the same main as tools/<script>.py)
    entry_points={
        "console_scripts": [
            "swin-train=swin_scratch.engine.train:main",  # tools/train_net.py (YAML and LazyConfig .py configs)
            "swin-evaluate=swin_scratch.engine.evaluate:main",  # tools/evaluate.py
            "swin-demo=swin_scratch.visualization.cli:main",  # tools/demo.py
            "swin-export=swin_scratch.export.cli:main",  # tools/export_model.py
            "swin-convert=swin_scratch.detection.convert_cli:main",  # tools/convert_swin_checkpoint.py
        ],
    },
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
