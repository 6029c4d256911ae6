"""Whole models: Swin, the text Transformer, RNNs, BERT-style encoder."""
