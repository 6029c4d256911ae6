"""TorchScript / ONNX export of Swin backbones and detectron2 detectors, each verified after writing."""
