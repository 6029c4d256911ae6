"""detectron2 side of the evaluation: the trainer's evaluator and dataset-name → ground-truth lookup.

:class:`SwinCOCOEvaluator` replaces only ``COCOEvaluator._eval_predictions``: detectron2 still
collects predictions across processes and saves ``coco_instances_results.json``; the scoring,
per-category table, JSON/CSV and plots are :func:`swin_scratch.evaluation.evaluate_coco_results`
and :func:`swin_scratch.evaluation.write_report`, the same code ``tools/evaluate.py`` runs on
saved results. Datasets are registered by the caller (:mod:`.datasets`), never here.
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager

from swin_scratch.coco.inputs import RESULTS_FILE_NAME, EvaluationInputError
from swin_scratch.evaluation.backends import check_backend
from swin_scratch.evaluation.coco_eval import (
    evaluate_coco_results,
    format_per_category_table,
    format_summary,
    write_report,
)

DEFAULT_MAX_DETS = [1, 10, 100]


class SwinCOCOEvaluator(COCOEvaluator):
    """detectron2's ``COCOEvaluator`` scored by this package, with per-category tables and plots.

    Returns detectron2's result format (``{"bbox": {"AP": ..., "AP-<class>": ...}, "segm": {...}}``)
    so trainers log and ``verify_results`` it unchanged. Keypoints and a custom
    ``max_dets_per_image`` are left to detectron2's own code path.

    Args:
        dataset_name, tasks, distributed, output_dir, **kwargs: as for ``COCOEvaluator``.
        backend: ``"pycocotools"`` (default) or ``"faster"`` (faster-coco-eval, same numbers).
        plots: write PR-curve and per-category AP PNGs next to the JSON/CSV in ``output_dir``.
        worst_n: how many lowest-AP categories get their own PR curve.
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        backend: str = "pycocotools",
        plots: bool = True,
        worst_n: int = 5,
        **kwargs: Any,
    ) -> None:
        check_backend(backend)
        super().__init__(dataset_name, tasks, distributed, output_dir, **kwargs)
        self._backend = backend
        self._plots = plots
        self._worst_n = worst_n
        self.report_files: list[Path] = []  # what the last evaluate() wrote

    def _eval_predictions(self, predictions: list[dict], img_ids: Sequence[int] | None = None) -> None:
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = list(self._tasks or self._tasks_from_predictions(coco_results))
        if "keypoints" in tasks or self._max_dets_per_image != DEFAULT_MAX_DETS:
            return super()._eval_predictions(predictions, img_ids=img_ids)

        self._map_to_dataset_category_ids(coco_results)
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            file_path = os.path.join(self._output_dir, RESULTS_FILE_NAME)
            self._logger.info(f"Saving results to {file_path}")
            with PathManager.open(file_path, "w") as f:
                f.write(json.dumps(coco_results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        if not coco_results:  # detectron2's convention: NaN metrics and a warning, not a crash
            for task in tasks:
                self._results[task] = self._derive_coco_results(None, task)
            return

        evaluated = evaluate_coco_results(self._coco_api, coco_results, tasks, backend=self._backend, img_ids=img_ids)
        for task, result in evaluated.items():
            self._logger.info(f"Evaluation results for {task} (backend {self._backend}):\n{format_summary(result)}")
            self._logger.info(f"Per-category {task} AP, worst first:\n{format_per_category_table(result)}")
            self._results[task] = result.detectron2_metrics()
        if self._output_dir:
            self.report_files = write_report(evaluated, self._output_dir, plots=self._plots, worst_n=self._worst_n)
            self._logger.info("COCO evaluation report: " + ", ".join(str(p) for p in self.report_files))

    def _map_to_dataset_category_ids(self, coco_results: list[dict]) -> None:
        """Model class indices (0..K-1) → the dataset's category ids, in place (as detectron2 does)."""
        mapping = getattr(self._metadata, "thing_dataset_id_to_contiguous_id", None)
        if not mapping:
            return
        reverse = {contiguous: dataset_id for dataset_id, contiguous in mapping.items()}
        for result in coco_results:
            if result["category_id"] not in reverse:
                raise ValueError(
                    f"a prediction has class {result['category_id']}, but dataset {self._metadata.name!r} "
                    f"has {len(reverse)} classes (0..{len(reverse) - 1}); check MODEL.*.NUM_CLASSES"
                )
            result["category_id"] = reverse[result["category_id"]]


def dataset_ground_truth(dataset_name: str, search_dir: str | os.PathLike | None = None) -> Path:
    """The COCO ground-truth JSON of a registered detectron2 dataset.

    Uses the dataset's ``json_file`` metadata; for datasets not stored as COCO JSON, the
    ``<name>_coco_format.json`` that ``COCOEvaluator`` caches in its output directory
    (``search_dir``), or a fresh conversion written there.
    """
    if dataset_name not in DatasetCatalog.list():
        known = ", ".join(sorted(DatasetCatalog.list())[:8])
        raise EvaluationInputError(
            f"dataset {dataset_name!r} is not registered (registered include: {known}, ...); "
            "give the ground-truth file with --gt instead"
        )
    json_file = getattr(MetadataCatalog.get(dataset_name), "json_file", None)
    if json_file:
        if not os.path.exists(json_file):
            raise EvaluationInputError(
                f"ground truth of dataset {dataset_name!r} not found at {json_file!r}; set DETECTRON2_DATASETS "
                "to the folder holding the datasets, or pass --gt"
            )
        return Path(json_file)
    if search_dir is not None:
        cached = Path(search_dir) / f"{dataset_name}_coco_format.json"
        if not cached.exists():
            from detectron2.data.datasets.coco import convert_to_coco_json

            convert_to_coco_json(dataset_name, str(cached))
        return cached
    raise EvaluationInputError(f"dataset {dataset_name!r} has no COCO json_file; pass --gt")
