"""The environment is described once: setup.py and environment.yml agree; env reports the install."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch", "pillow": "pillow", "pyyaml": "pyyaml"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _setup_install_requires() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "INSTALL_REQUIRES":
            return {_name(value.value) for value in node.value.elts}
    raise AssertionError("setup.py has no INSTALL_REQUIRES list")


def _environment_yml_requires() -> set[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(item) for item in dep["pip"]}
        else:
            names.add(CONDA_TO_PYPI.get(_name(dep), _name(dep)))
    return names - {"python", "pip"}


def test_environment_yml_and_setup_py_name_the_same_runtime_dependencies():
    assert _environment_yml_requires() == _setup_install_requires()


def test_environment_yml_uses_conda_forge_only():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert not any(isinstance(dep, str) and "pytorch-cuda" in dep for dep in env["dependencies"])


def test_timm_is_never_a_runtime_dependency():
    assert "timm" not in _setup_install_requires()
    for path in (REPO / "swin_scratch").rglob("*.py"):
        source = path.read_text()
        assert not re.search(r"^\s*(import timm|from timm)", source, re.M), path
        assert not re.search(r"^\s*(import|from) torchvision\.models", source, re.M), path


def test_env_module_reports_how_detectron2_was_installed():
    result = subprocess.run([sys.executable, "-m", "swin_scratch.env"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "detectron2" in result.stdout
    assert re.search(r"install mode (kept|spec|pb1-fallback): ", result.stdout)
    for op in ("nms_rotated", "roi_align_rotated"):
        assert re.search(rf"compiled op {op} on CPU: (works|fails: )", result.stdout)
    assert re.search(r"compat fixes applied \((\d+)\): ", result.stdout)


def test_env_reports_compiled_ops_working_exactly_when_the_extension_exists():
    from swin_scratch.env import compiled_ops_report, detectron2_report

    report = compiled_ops_report()
    assert set(report) == {"nms_rotated", "roi_align_rotated"}
    if detectron2_report()["compiled_extension"]:
        assert set(report.values()) == {"works"}
    else:
        assert all(outcome.startswith("fails: RuntimeError: detectron2._C.") for outcome in report.values()), report


def test_install_record_lists_the_fixes_this_detectron2_carries():
    """``pb1-fallback`` carries every fix; ``spec`` only fixes, none of them about a missing extension."""
    from swin_scratch.compat.detectron2_fixes import ADDED_FILES, FIXES
    from swin_scratch.env import detectron2_report

    report = detectron2_report()
    applied = set(report["fixes_applied"])
    if report["mode"] == "pb1-fallback":
        assert applied == {fix.path for fix in FIXES} | set(ADDED_FILES)
    elif report["mode"] == "spec":
        assert applied <= {fix.path for fix in FIXES if not fix.for_missing_extension}
