"""Build the project's sdist and wheel from a copy of the clone and install the wheel into a fresh venv
layered on the running one (as the Makefile's .venv-upstream is), so torch and detectron2 are not
installed twice and nothing is downloaded.

The layer is a ``.pth`` file that lists the running interpreter's site-packages folders as plain
paths: their packages are importable, but their own ``.pth`` files (the clone's editable install of
swin_scratch among them) are not run, so the new venv cannot see the clone.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from helpers.tools import REPO

# What is not part of the source tree (build outputs, environments, data, caches)
NOT_SOURCE = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
              "datasets", "output")


def copy_source_tree(destination: Path) -> Path:
    """The clone's files (the ``configs`` link kept a link) without builds, venvs and data."""
    shutil.copytree(REPO, destination, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    return destination


def build_sdist(source: Path, out_dir: Path) -> Path:
    """``python -m build --sdist`` without the ``build`` package: the PEP 517 hook of the declared backend,
    run with this environment's setuptools (``--no-build-isolation``: nothing is downloaded)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out_dir)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, check=True)
    return out_dir / result.stdout.strip().splitlines()[-1]


def unpack_sdist(sdist: Path, destination: Path) -> Path:
    """The sdist's one top folder, extracted under ``destination``."""
    with tarfile.open(sdist) as archive:
        archive.extractall(destination, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        top = archive.getnames()[0].split("/")[0]
    return destination / top


def build_wheel(source: Path, out_dir: Path) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of a source folder (an unpacked sdist or a clone)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out_dir), str(source)], check=True, capture_output=True, text=True)
    (wheel,) = out_dir.glob("swin_scratch-*.whl")
    return wheel


def site_packages_on_path() -> list[str]:
    """The running interpreter's site-packages folders, in import order (a layered venv's first)."""
    return [entry for entry in sys.path if Path(entry).name in ("site-packages", "dist-packages")]


def layered_venv(venv: Path) -> Path:
    """A venv without pip whose packages are its own, then the running interpreter's; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "swin_scratch_base_venv.pth").write_text("\n".join(site_packages_on_path()) + "\n")
    return python


def install_wheel(wheel: Path, python: Path) -> None:
    """This environment's pip installs ``wheel`` into ``python``'s venv (``pip --python``), offline; its
    dependencies are the base venv's (``--no-deps``), and nothing installed there is touched
    (``--ignore-installed``: the base venv's swin_scratch is not uninstalled)."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--ignore-installed", "-q", str(wheel)], check=True, capture_output=True, text=True)


def outside_environment(venv: Path) -> dict[str, str]:
    """An environment for commands of ``venv`` that cannot reach the clone: no PYTHONPATH, the venv's bin
    first on PATH; HOME and TMPDIR kept (caches), one thread per process (the CI has 2 cores)."""
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "OMP_NUM_THREADS": "1",
           "HOME": os.environ.get("HOME", str(venv)), "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    return env
