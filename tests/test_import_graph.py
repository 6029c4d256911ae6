"""The package's layers are a rule: which subpackage may import which, and no import cycles.

Imports inside functions count: they couple two modules as much as top-level ones do.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from helpers.import_graph import find_cycles, forbidden_imports, import_graph

PACKAGE = Path(__file__).resolve().parents[1] / "swin_scratch"

# The allowed imports between layers, bottom-up: a layer may import only the layers listed for it
# (and itself). docs/swin.md's "where each concept lives" describes each layer.
FOUNDATIONS = {"layers", "weights", "coco", "precision", "memory", "compat"}  # import nothing of the package
ALLOWED_IMPORTS: dict[str, set[str]] = {
    **{name: set() for name in FOUNDATIONS},
    "env": {"compat"},
    "models": {"layers", "weights"},  # weights: load_swin_checkpoint re-exported beside the models
    "text": {"layers"},
    "data": {"coco"},
    "evaluation": {"coco"},
    "detection": FOUNDATIONS | {"models", "data", "evaluation"},
    "engine": FOUNDATIONS | {"models", "data", "evaluation", "detection"},
    "export": FOUNDATIONS | {"models", "detection", "engine"},
    "visualization": FOUNDATIONS | {"data", "evaluation", "detection", "engine"},
    "benchmark": FOUNDATIONS | {"models", "text", "data", "evaluation", "detection", "engine", "export"},
    "configs": FOUNDATIONS | {"models", "detection"},  # the LazyConfig recipes name the classes they build
    "model_zoo": FOUNDATIONS | {"models", "detection", "configs"},
}


def test_every_import_between_layers_is_an_allowed_edge():
    problems = forbidden_imports(import_graph(PACKAGE), ALLOWED_IMPORTS)
    assert not problems, "imports against the layer table (tests/test_import_graph.py):\n" + "\n".join(problems)


def test_an_upward_import_inside_a_function_is_reported_with_its_edge(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/core.py": """
            def helper():
                from pkg.high.tool import run  # upward, hidden in a function
                return run
        """,
        "high/__init__.py": "",
        "high/tool.py": "from pkg.low.core import helper\nrun = helper\n",
    })
    allowed = {"low": set(), "high": {"low"}}
    assert forbidden_imports(import_graph(package), allowed) == ["low -> high (pkg.low.core imports pkg.high.tool)"]


def test_a_layer_missing_from_the_table_may_import_nothing(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "new/__init__.py": "import pkg.low\n",
    })
    assert forbidden_imports(import_graph(package), {"low": set()}) == ["new -> low (pkg.new imports pkg.low)"]


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A throwaway package ``pkg`` under ``root`` with the given ``{relative path: source}``."""
    for relative, source in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "pkg"


def test_swin_scratch_has_no_import_cycles():
    cycles = find_cycles(import_graph(PACKAGE))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_graph_sees_every_subpackage():
    graph = import_graph(PACKAGE)
    for module in ("swin_scratch.layers.attention", "swin_scratch.text.transformer", "swin_scratch.data.shapes",
                   "swin_scratch.evaluation.coco_eval", "swin_scratch.detection.backbone", "swin_scratch.export.cli"):
        assert module in graph
    assert "swin_scratch.layers.attention" in graph["swin_scratch.text.transformer"]


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import helper\n",
        "b.py": """
            def helper():
                from pkg.a import something  # hidden in a function: still a cycle
                return something
        """,
    })
    assert find_cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_from_package_import_submodule_resolves_to_the_submodule(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "",
        "sub/x.py": "from .. import y\n",
        "y.py": """
            import pkg.sub.x as x_module
        """,
    })
    graph = import_graph(package)
    assert graph["pkg.sub.x"] == {"pkg.y"}
    assert graph["pkg.y"] == {"pkg.sub.x"}
    assert find_cycles(graph) == [["pkg.sub.x", "pkg.y", "pkg.sub.x"]]


def test_a_longer_cycle_is_named_in_order(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "import pkg.b\n",
        "b.py": "from pkg.c import thing\n",
        "c.py": "from pkg import a\nthing = 1\n",
        "d.py": "from pkg import a, b, c\n",  # depends on the cycle without being in it
    })
    assert find_cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_names_imported_from_a_package_init_point_at_the_init(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "from .core import run\n",
        "core.py": "def run():\n    from pkg import VERSION\n",
    })
    graph = import_graph(package)
    assert graph["pkg.core"] == {"pkg"}
    assert find_cycles(graph) == [["pkg", "pkg.core", "pkg"]]


def test_acyclic_imports_pass(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "from .b import f\n",
        "a.py": "import os\nimport numpy\n",
        "b.py": "from .a import os\nfrom . import a\n",
    })
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg.a"}
    assert find_cycles(graph) == []
