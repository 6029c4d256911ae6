"""COCO files without torch or detectron2: reading and validating instances/results JSON with one
clear error per mistake (:mod:`.inputs`), the dataset error types (:mod:`.errors`), the categories
of an instances file (:mod:`.categories`) and synthetic COCO data for benchmarks (:mod:`.synthetic`)."""
