"""Shared test set-up: deterministic seeds, one torch thread per pytest-xdist worker, the ``device``
fixture that runs a test on every device this machine has, and the ``unregister_new_datasets`` fixture."""
import os
import random

import numpy as np
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # CI has 2 cores and runs 2 workers: one intra-op thread each avoids oversubscription.
    torch.set_num_threads(1)

# Where the device-dependent tests run: the CPU always, CUDA as well where a GPU is visible. A test
# that takes a ``device`` argument runs once per entry (ids ``[cpu]``, ``[cuda]``: tools/gpu_check.sh
# selects the GPU ones with ``-k cuda``).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """The device name; on CUDA with TF32 off (matmuls and cuDNN convolutions), so that fp32 results
    match the CPU reference at fp32 tolerances (TF32 keeps 10 mantissa bits: ~1e-3 relative)."""
    if request.param != "cuda":
        yield request.param
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield request.param
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def unregister_new_datasets():
    """Datasets a test registers in this process are unregistered after it.

    Names derive from file names (``fruit/train.json`` -> ``fruit_train``) and a name held by other
    files gets a suffix, so a dataset left behind would rename the next test's.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    before = set(DatasetCatalog.list())
    yield
    for name in set(DatasetCatalog.list()) - before:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
