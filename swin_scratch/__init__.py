"""swin_scratch: a from-scratch Swin Transformer for detectron2, plus the text Transformer/RNN
modules that share its attention kernel."""

__version__ = "0.1.0"
