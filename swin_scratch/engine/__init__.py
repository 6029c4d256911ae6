"""Run-time machinery around the detectron2 plugin: the train/evaluate main (:mod:`.train`), the
trainer, the launcher, interruptions, RNG state, the resumable train loader, mixed precision and
the predictor."""
