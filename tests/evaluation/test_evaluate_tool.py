"""tools/evaluate.py and tools/benchmark_coco_eval.py as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.tools import REPO as ROOT
from helpers.tools import load_tool

evaluate_tool = load_tool("evaluate")


def _write_fixture(root: Path, perturb: bool = True) -> tuple[Path, Path]:
    """GT with two categories on four images; results = GT, with one box shifted when ``perturb``."""
    images, annotations, results = [], [], []
    for image_id in range(1, 5):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 120, "width": 160})
        for k, (category_id, (x, y, w, h)) in enumerate([(1, (10, 10, 40, 30)), (2, (70, 40, 60, 50))]):
            annotations.append({"id": image_id * 10 + k, "image_id": image_id, "category_id": category_id,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            shift = 12 if perturb and image_id == 1 and category_id == 2 else 0
            results.append({"image_id": image_id, "category_id": category_id,
                            "bbox": [x + shift, y, w, h], "score": 0.9 - 0.1 * k})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}]}
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "results.json").write_text(json.dumps(results))
    return root / "gt.json", root / "results.json"


def test_prints_summary_and_per_category_table_and_lists_written_files(tmp_path, capsys):
    gt, results = _write_fixture(tmp_path)
    code = evaluate_tool.main(["--gt", str(gt), "--results", str(results), "--output", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = " in out
    assert "| category |    id |    AP |  AP50 |  AP75 |   #GT | #dets |" in out
    assert out.index("| bicycle") < out.index("| person")  # the shifted class is worse: listed first
    listed = [Path(line.strip()) for line in out.split("written:\n")[1].splitlines()]
    assert {p.name for p in listed} >= {"coco_eval.json", "per_category_bbox.csv", "pr_curves_bbox.png",
                                        "per_category_ap_bbox.png"}
    assert all(p.exists() for p in listed)


def test_default_output_is_next_to_the_results_and_faster_backend_runs(tmp_path, capsys):
    gt, results = _write_fixture(tmp_path, perturb=False)
    assert evaluate_tool.main(["--gt", str(gt), "--results", str(results), "--backend", "faster", "--no-plots"]) == 0
    report = json.loads((tmp_path / "coco_eval" / "coco_eval.json").read_text())
    assert report["bbox"]["backend"] == "faster"
    assert report["bbox"]["summary"]["AP"] == pytest.approx(100.0)
    assert not list((tmp_path / "coco_eval").glob("*.png"))


def test_user_error_is_one_line_on_stderr_with_exit_status_2(tmp_path):
    gt, results = _write_fixture(tmp_path)
    detections = json.loads(results.read_text())
    detections[2]["image_id"] = 4242
    results.write_text(json.dumps(detections))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), "--gt", str(gt),
                           "--results", str(results)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "image_id 4242" in lines[0] and "results.json" in lines[0]
    assert "Traceback" not in proc.stderr


def test_ground_truth_is_required_when_no_dataset_can_be_named(tmp_path, capsys):
    _, results = _write_fixture(tmp_path)
    assert evaluate_tool.main(["--results", str(results)]) == 2
    assert "--gt instances.json, or --dataset NAME" in capsys.readouterr().err


def test_detectron2_output_directory_finds_results_and_the_registered_datasets_ground_truth(tmp_path, capsys):
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    gt, results = _write_fixture(tmp_path)
    name = f"eval_tool_val_{tmp_path.name}"
    output_dir = tmp_path / "output"
    (output_dir / "inference" / name).mkdir(parents=True)
    results.rename(output_dir / "inference" / name / "coco_instances_results.json")
    register_coco_instances(name, {}, str(gt), str(tmp_path))
    try:
        code = evaluate_tool.main(["--results", str(output_dir), "--no-plots"])  # dataset from inference/<name>/
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    out = capsys.readouterr().out
    assert code == 0
    assert f"ground truth: {gt}" in out
    assert (output_dir / "inference" / name / "coco_eval" / "coco_eval.json").exists()


def test_unregistered_dataset_name_is_a_clear_error(tmp_path, capsys):
    _, results = _write_fixture(tmp_path)
    assert evaluate_tool.main(["--results", str(results), "--dataset", "no_such_dataset_val"]) == 2
    assert "dataset 'no_such_dataset_val' is not registered" in capsys.readouterr().err


def test_benchmark_prints_timings_and_agreement_of_both_backends(capsys):
    benchmark_tool = load_tool("benchmark_coco_eval")
    assert benchmark_tool.main(["--images", "20", "--categories", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| bbox", "| segm"))]
    assert len(rows) == 2
    for row in rows:
        speed_up, difference = row.strip("| ").split(" | ")[3:5]
        assert speed_up.endswith("x")
        assert float(difference) <= 1e-12
