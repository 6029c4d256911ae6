"""Install a working detectron2 into the current Python environment.

Run as ``python -m swin_scratch.compat.install_detectron2`` (``make setup`` does). Order:

a. keep a detectron2 that already imports;
b. if ``DETECTRON2_SPEC`` is set (git URL, local checkout, wheel), ``pip install`` it, then
   mend the installed tree with :func:`~swin_scratch.compat.detectron2_fixes.mend_installed`
   (the fixes it still needs, e.g. ``pkg_resources`` in ``model_zoo`` for upstream main);
c. otherwise download PyPI's ``pb1-detectron2==0.6`` source distribution (detectron2 v0.6's
   Python sources and projects, without the C++/CUDA sources), apply
   :mod:`swin_scratch.compat.detectron2_fixes`, and install the pure-Python package as
   ``detectron2`` (with ``detectron2.projects.point_rend/deeplab/panoptic_deeplab``, as upstream's
   setup.py maps them) without the compiled extension.

The install mode (kept, spec, pb1-fallback) and the fixes applied are recorded in
``<prefix>/share/swin_scratch/detectron2_install.json`` and reported by
``python -m swin_scratch.env``. Uses only the standard library and pip.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from swin_scratch.compat.detectron2_fixes import apply_fixes, mend_installed

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILENAME = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
FALLBACK_VERSION = "0.6+pb1.swinscratch"
RECORD_PATH = Path(sys.prefix) / "share" / "swin_scratch" / "detectron2_install.json"

# detectron2 v0.6's pure-Python runtime dependencies (its setup.py minus pydot/future, which only
# the Caffe2 export uses; fvcore/iopath unpinned because current releases work). black formats
# LazyConfig.to_py's output (upstream main lists it too).
FALLBACK_REQUIRES = [
    "Pillow>=7.1",
    "matplotlib",
    "pycocotools>=2.0.2",
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "tensorboard",
    "fvcore>=0.1.5",
    "iopath>=0.1.7",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
    "black",
]

# detectron2's setup.py installs these sdist folders as detectron2.projects.<name> (with
# package_dir). The staging tree copies them to detectron2/projects/<name>, the same installed
# layout, so one fix path (detectron2/projects/...) is right for both the sdist and an installed tree.
PROJECTS = {
    "point_rend": "projects/PointRend/point_rend",
    "deeplab": "projects/DeepLab/deeplab",
    "panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}

STAGING_SETUP = """from setuptools import find_namespace_packages, setup

setup(
    name="detectron2",
    version={version!r},
    description="detectron2 v0.6 Python sources (from pb1-detectron2) with swin_scratch's compatibility fixes",
    packages=find_namespace_packages(include=["detectron2", "detectron2.*"]),
    package_data={{"": ["*.yaml", "*.py"]}},
    include_package_data=True,
    python_requires=">=3.8",
    install_requires={requires!r},
)
"""


def log(message: str) -> None:
    print(f"[install_detectron2] {message}", flush=True)


def detectron2_imports() -> bool:
    """True if detectron2 imports in a fresh interpreter (a fresh one: no stale module cache)."""
    probe = "import detectron2, detectron2.modeling, detectron2.engine"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def pip_install(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", *args]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)


def sdist_url() -> str:
    """Find the sdist through PyPI's JSON simple API (or PIP_INDEX_URL's, if it speaks it)."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(
        f"{index}/{SDIST_NAME}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    for entry in files:
        if entry["filename"] == SDIST_FILENAME:
            return entry["url"]
    raise RuntimeError(f"{SDIST_FILENAME} not listed at {index}/{SDIST_NAME}/")


def download_sdist(dest: Path) -> Path:
    path = dest / SDIST_FILENAME
    url = sdist_url()
    log(f"downloading {url}")
    with urllib.request.urlopen(url, timeout=120) as response:
        path.write_bytes(response.read())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{path.name}: sha256 {digest} != expected {SDIST_SHA256}; refusing to install")
    return path


def build_staging_tree(sdist: Path, staging: Path) -> list[str]:
    """Unpack the ``detectron2`` package and its projects, fix them, and write a minimal setup.py."""
    with tarfile.open(sdist) as archive:
        archive.extractall(staging, filter="data")
    source = staging / f"{SDIST_NAME}-{SDIST_VERSION}"
    tree = staging / "tree"
    tree.mkdir()
    shutil.copytree(source / "detectron2", tree / "detectron2")
    for name, folder in PROJECTS.items():
        shutil.copytree(source / folder, tree / "detectron2" / "projects" / name)
    changed = apply_fixes(tree)
    (tree / "setup.py").write_text(STAGING_SETUP.format(version=FALLBACK_VERSION, requires=FALLBACK_REQUIRES))
    return changed


def fixes_fingerprint() -> str:
    """Hash of the fixes module: a fallback install made with other fixes is stale."""
    source = Path(__file__).with_name("detectron2_fixes.py").read_bytes()
    return hashlib.sha256(source).hexdigest()


# How detectron2 got here, named for what happened (records from before the names used letters).
KEPT, SPEC, PB1_FALLBACK = "kept", "spec", "pb1-fallback"
LEGACY_MODE_NAMES = {"a": KEPT, "b": SPEC, "c": PB1_FALLBACK}


def read_record() -> dict:
    try:
        entry = json.loads(RECORD_PATH.read_text())
    except (OSError, ValueError):
        return {}
    if "case" in entry:
        entry["mode"] = LEGACY_MODE_NAMES.get(entry.pop("case"), "unknown")
    return entry


def record(mode: str, detail: str, fixes_applied: list[str], spec: str | None = None) -> None:
    RECORD_PATH.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "mode": mode,
        "detail": detail,
        "spec": spec,
        "fixes_sha256": fixes_fingerprint() if mode in (SPEC, PB1_FALLBACK) else None,
        "fixes_applied": sorted(set(fixes_applied)),
    }
    RECORD_PATH.write_text(json.dumps(entry, indent=2) + "\n")


def installed_package_parent() -> Path:
    """The directory holding the installed ``detectron2`` package (asked in a fresh interpreter)."""
    probe = "import importlib.util; print(importlib.util.find_spec('detectron2').submodule_search_locations[0])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return Path(result.stdout.strip()).parent


def mend_spec_install(spec: str, previous: dict) -> str:
    """The ``spec`` mode: mend the installed detectron2 where it still has a bug the fix table knows."""
    mended = mend_installed(installed_package_parent())
    log(f"mended {len(mended)} file(s) of the installed detectron2: {', '.join(mended) or 'none needed'}")
    earlier = previous.get("fixes_applied", []) if previous.get("spec") == spec else []
    record(SPEC, f"pip install {spec}", earlier + mended, spec=spec)
    return SPEC


def install() -> str:
    previous = read_record()
    if previous.get("mode") == PB1_FALLBACK and previous.get("fixes_sha256") != fixes_fingerprint():
        log("the compatibility fixes changed since detectron2 was installed; reinstalling it")
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "detectron2"], check=True)
    spec = os.environ.get("DETECTRON2_SPEC")
    importable = detectron2_imports()
    if spec and (previous.get("spec") != spec or not importable):
        # asked for explicitly: replaces whatever detectron2 is importable (even one that a
        # venv built on another venv's packages sees through a .pth)
        pip_install("--quiet", "--no-build-isolation", spec)
        return mend_spec_install(spec, previous)
    if previous.get("mode") == SPEC and importable:
        # the fix table may have grown since: mending is idempotent, so run it again
        return mend_spec_install(previous["spec"], previous)
    if importable:
        if not RECORD_PATH.exists():
            record(KEPT, "detectron2 already importable; kept as is", [])
        log(f"detectron2 already imports; keeping it (install mode {KEPT})")
        return KEPT
    with tempfile.TemporaryDirectory(prefix="d2-fallback-") as tmp:
        staging = Path(tmp)
        sdist = download_sdist(staging)
        changed = build_staging_tree(sdist, staging)
        log(f"applied {len(changed)} compatibility fixes (swin_scratch/compat/detectron2_fixes.py)")
        pip_install("--quiet", "--no-build-isolation", str(staging / "tree"))
    if not detectron2_imports():
        raise RuntimeError("detectron2 was installed from pb1-detectron2 but does not import; see the log above")
    detail = f"{SDIST_FILENAME} (sha256 {SDIST_SHA256[:12]}...) + swin_scratch fixes, no compiled extension"
    record(PB1_FALLBACK, detail, changed)
    return PB1_FALLBACK


def main() -> int:
    try:
        mode = install()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        print(f"error: could not install detectron2: {err}", file=sys.stderr)
        return 1
    log(f"detectron2 ready (install mode {mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
