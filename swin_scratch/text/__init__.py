"""A built-in synthetic seq2seq task and the training loop for the text models (which live in :mod:`swin_scratch.models`)."""
