"""swin_scratch: a from-scratch Swin Transformer backbone for detectron2.

detectron2 itself is not on PyPI; ``make setup`` (or
``python -m swin_scratch.compat.install_detectron2``) installs it after this package.
"""
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
    packages=find_packages(include=["swin_scratch", "swin_scratch.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
