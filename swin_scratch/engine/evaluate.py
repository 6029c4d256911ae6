"""Evaluate saved COCO-format results without re-running the model.

    swin-evaluate --gt instances_val2017.json --results coco_instances_results.json
    swin-evaluate --gt gt.json --results results.json --iou-type bbox segm --output eval/ --backend faster
    swin-evaluate --results output/ --dataset coco_2017_val     # a detectron2 output directory

Prints the 12-number COCO summary and the per-category AP table (worst first) for each IoU
type, writes JSON/CSV and PR-curve / per-category-AP pictures under --output, and lists them.
In a clone, `python tools/evaluate.py` runs this same ``main``.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from swin_scratch.evaluation import (
    BACKENDS,
    EvaluationInputError,
    evaluate_coco_results,
    find_results_file,
    format_per_category_table,
    format_summary,
    write_report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, metavar="FILE_OR_DIR",
                        help="COCO results JSON (a list of detections), or a detectron2 output directory "
                             "holding [inference/[<dataset>/]]coco_instances_results.json")
    parser.add_argument("--gt", metavar="JSON", help="COCO ground truth (instances_*.json)")
    parser.add_argument("--dataset", metavar="NAME",
                        help="registered detectron2 dataset whose ground truth to use when --gt is not given "
                             "(default: the <dataset> folder name under inference/)")
    parser.add_argument("--iou-type", nargs="+", choices=("bbox", "segm"), dest="iou_types",
                        help="default: bbox, plus segm when the results have masks")
    parser.add_argument("--backend", choices=BACKENDS, default="pycocotools",
                        help="'faster' needs the optional faster-coco-eval package (same numbers, faster)")
    parser.add_argument("--output", metavar="DIR",
                        help="where to write JSON/CSV/PNGs (default: coco_eval/ next to the results file)")
    parser.add_argument("--worst", type=int, default=5, metavar="N", help="categories with their own PR curve")
    parser.add_argument("--table-rows", type=int, default=None, metavar="N",
                        help="print only the N worst categories (all are in the CSV/JSON)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results_file, dataset_from_dir = find_results_file(args.results, args.dataset)
        ground_truth = args.gt
        if ground_truth is None:
            dataset_name = args.dataset or dataset_from_dir
            if dataset_name is None:
                raise EvaluationInputError("give the ground truth: --gt instances.json, or --dataset NAME")
            with warnings.catch_warnings():  # detectron2's import warns about torch deprecations
                warnings.simplefilter("ignore", FutureWarning)
                from swin_scratch.detection.datasets import register_shapes_datasets
                from swin_scratch.detection.evaluator import dataset_ground_truth

            register_shapes_datasets()  # the built-in datasets are known by name, as in training
            ground_truth = dataset_ground_truth(dataset_name, search_dir=results_file.parent)
        output = Path(args.output) if args.output else results_file.parent / "coco_eval"
        print(f"ground truth: {ground_truth}\nresults:      {results_file}")
        evaluated = evaluate_coco_results(ground_truth, results_file, args.iou_types, backend=args.backend)
        for iou_type, result in evaluated.items():
            print(f"\n== {iou_type}: {result.num_detections} detections on {result.num_images} images "
                  f"(backend {result.backend}) ==")
            print(format_summary(result))
            print(f"\nPer-category {iou_type} AP (0-100), worst first:")
            print(format_per_category_table(result, limit=args.table_rows))
        written = write_report(evaluated, output, plots=not args.no_plots, worst_n=args.worst)
    except EvaluationInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\nwritten:")
    for path in written:
        print(f"  {path}")
    return 0

