"""Reading and writing weights files: the one place a path or URL becomes a dict of tensors.

Everything that reads weights calls :func:`read_checkpoint` (training's ``MODEL.WEIGHTS``,
``--eval-only``, ``tools/demo.py``, export, ``tools/convert_swin_checkpoint.py`` and
:func:`swin_scratch.models.load_swin_checkpoint`); everything that writes one calls
:func:`atomic_write_bytes`. Both raise or propagate one error class, :class:`CheckpointError`,
whose message names the file (or URL) and what to do.

Why one place: loading is where safety lives. ``torch.load`` runs with ``weights_only=True``
(a pickle that wants to run code is refused), detectron2 model-zoo ``.pkl`` files go through an
unpickler that admits numpy arrays only, ``.safetensors`` files (timm's and Hugging Face's hub
format) are read by the safetensors library, which holds no code at all, and ``http(s)://`` URLs
are downloaded once into the cache detectron2 uses (iopath's: ``$FVCORE_CACHE`` or
``~/.torch/iopath_cache``), atomically, so a half download never counts as cached. A folder is read
as a Hugging Face ``save_pretrained`` folder: its ``model.safetensors`` (or ``pytorch_model.bin``,
or the shards an ``*.index.json`` lists).
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any, Callable
from urllib.parse import urlparse

import torch

URL_SCHEMES = ("http://", "https://")
DOWNLOAD_CHUNK_BYTES = 1 << 20
# the weights files of a Hugging Face save_pretrained folder, in the order transformers prefers them
HF_FOLDER_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json")


class CheckpointError(RuntimeError):
    """A weights file or URL that cannot be used; the message names it and what to do."""


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(fileobj)`` to a temp file in the same folder, fsync, then rename into place.

    A crash at any point leaves either the old file or the complete new one, never a partial file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_url(path: str | os.PathLike) -> bool:
    return str(path).startswith(URL_SCHEMES)


def weights_cache_dir() -> Path:
    """detectron2's download cache (iopath's ``get_cache_dir``): ``$FVCORE_CACHE`` or ``~/.torch/iopath_cache``."""
    return Path(os.path.expanduser(os.getenv("FVCORE_CACHE", "~/.torch/iopath_cache")))


def cached_path_for_url(url: str) -> Path:
    """Where ``url`` is cached: the cache folder + the URL's path, as iopath lays it out (shared with detectron2)."""
    parsed = urlparse(url)
    return weights_cache_dir() / parsed.path.lstrip("/")


def _download_error(url: str, cached: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"cannot download weights {url} ({reason}); they would be cached at {cached}. Either download the "
        "file another way and give its local path (MODEL.WEIGHTS path/to/file.pth, or --weights), or set "
        'MODEL.WEIGHTS "" to train from scratch on purpose'
    )


def _copy_with_progress(response: Any, handle: IO[bytes], url: str, total: int | None) -> int:
    from tqdm import tqdm

    received = 0
    name = url.rsplit("/", 1)[-1]
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}",
              mininterval=1.0, leave=False) as bar:
        while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
            handle.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received


def download_weights(url: str, timeout_s: float = 60.0) -> Path:
    """The cached copy of ``url``, downloading it first if it is not cached yet.

    The file is written under a temp name and renamed only once complete (every byte the server
    announced has arrived), so an interrupted download is retried on the next run, never loaded.
    """
    cached = cached_path_for_url(url)
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0

            def write(handle: IO[bytes]) -> None:
                nonlocal received
                received = _copy_with_progress(response, handle, url, total)
                if total is not None and received != total:
                    raise _download_error(url, cached, f"interrupted after {received} of {total} bytes")

            atomic_write_bytes(cached, write)
    except CheckpointError:
        raise
    except urllib.error.HTTPError as err:
        raise _download_error(url, cached, f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _download_error(url, cached, f"no connection: {err.reason}") from None
    except OSError as err:  # timeouts, resets, a cache folder that cannot be written
        raise _download_error(url, cached, f"{type(err).__name__}: {err}") from None
    return cached


def local_weights_path(path_or_url: str | os.PathLike) -> Path:
    """A local file for ``path_or_url``: the path itself, or the (downloaded) cached copy of a URL."""
    if is_url(path_or_url):
        return download_weights(str(path_or_url))
    path = Path(path_or_url)
    if path.is_dir():
        return hf_folder_weights(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; check MODEL.WEIGHTS / --weights or the path given")
    return path


def hf_folder_weights(folder: Path) -> Path:
    """The weights file of a Hugging Face ``save_pretrained`` folder; one error listing what is there otherwise."""
    for name in HF_FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    present = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    raise CheckpointError(
        f"checkpoint folder {folder} has no weights file ({' / '.join(HF_FOLDER_WEIGHTS)}); it holds {present}. "
        "Give a weights file, or a Hugging Face save_pretrained folder"
    )


def hf_folder_config(path_or_url: str | os.PathLike) -> dict[str, Any] | None:
    """The ``config.json`` beside a Hugging Face folder's weights (its ``model_type``, window size...), or None."""
    if is_url(path_or_url):
        return None
    path = Path(path_or_url)
    config = (path if path.is_dir() else path.parent) / "config.json"
    try:
        return json.loads(config.read_text()) if config.is_file() else None
    except (OSError, ValueError):
        return None


def _storage_from_bytes(data: bytes) -> Any:
    """A tensor storage pickled by plain ``pickle`` (its bytes are a ``torch.save`` file): read with
    ``weights_only=True``, where torch's own ``_load_from_bytes`` would run any pickle inside."""
    import io

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """detectron2 ``.pkl`` files hold numpy arrays (model zoo, SwinT_detectron2) or torch tensors
    pickled by plain ``pickle`` (Mask2Former's converter) in dicts; nothing else may be built."""

    # the two functions a plainly pickled tensor is rebuilt with; the storage one is read safely
    TENSOR_REBUILDERS = {
        ("torch._utils", "_rebuild_tensor_v2"): None,
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    }

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # numpy >= 1.26 pickles arrays this way at protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.TENSOR_REBUILDERS:
            return self.TENSOR_REBUILDERS[module, name] or super().find_class(module, name)
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> Any:
    """A detectron2 model-zoo file as is; a Caffe2-era blob dict wrapped the way detectron2 wraps it."""
    with open(path, "rb") as handle:
        data = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    if not isinstance(data, dict) or ("model" in data and "__author__" in data):
        return data
    blobs = data.get("blobs", data)
    blobs = {key: value for key, value in blobs.items() if not key.endswith("_momentum")}
    return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _load_sharded(index: Path) -> dict[str, Any]:
    """The tensors of every shard a ``*.index.json`` lists (``weight_map``: key -> shard file)."""
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    merged: dict[str, Any] = {}
    for shard in shards:
        merged.update(_load_file(index.parent / shard))
    return merged


def _load_file(path: Path) -> Any:
    if path.name.endswith(".index.json"):
        return _load_sharded(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    if path.suffix == ".pkl":
        return _load_pickle(path)
    return torch.load(path, map_location="cpu", weights_only=True)  # .pth, .pt, .bin


def read_checkpoint(path_or_url: str | os.PathLike) -> dict[str, Any]:
    """The dict stored in a weights file, downloading a URL first: ``.pth``/``.pt``/``.bin`` via
    ``torch.load(weights_only=True)``, ``.safetensors`` via the safetensors library, detectron2 ``.pkl``
    via a numpy-only unpickler, a Hugging Face folder via the weights file in it.

    Raises :class:`CheckpointError` for a missing, truncated or corrupt file, pickled code, a
    download that fails, or a file that holds something other than a dict.
    """
    path = local_weights_path(path_or_url)
    try:
        loaded = _load_file(path)
    except Exception as err:  # truncated, corrupt, or a pickle that wants to run code
        first_line = (str(err).splitlines() or [""])[0][:300]
        shown = path if Path(str(path_or_url)).is_dir() else path_or_url
        raise CheckpointError(
            f"cannot load checkpoint {shown}: {type(err).__name__}: {first_line}. The file is truncated, "
            "corrupt, or not a plain weights file (pickled code is refused); download or save it again"
        ) from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"checkpoint {path_or_url} holds a {type(loaded).__name__}, not a dict of weights")
    return loaded
