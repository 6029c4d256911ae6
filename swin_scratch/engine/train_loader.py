"""The training data loader whose k-th batch is a pure function of (seed, shard, k).

Why not detectron2's ``build_detection_train_loader``: its batches depend on the loader's history
(aspect-ratio buckets filled by whichever worker delivered first, each worker's NumPy RNG advanced
by every image it augmented, a base seed drawn from torch's global RNG when the iterator is first
used), so a run resumed at iteration k cannot see the batches an uninterrupted run sees. Here:

- the batch sampler walks detectron2's infinite shuffled index stream for this shard and groups it
  by aspect ratio itself, in the main process, so batch k is known without loading any image and a
  resumed run just skips k batches of indices;
- every image is augmented under RNGs seeded from (seed, shard, position in the stream), so its
  augmentation does not depend on which worker maps it or on what that worker mapped before;
- the DataLoader owns a ``torch.Generator``: building or starting it never draws from torch's
  global RNG, which belongs to the model (drop-path, proposal sampling) and is checkpointed.

A shard is what one process reads per forward pass. Without gradient accumulation a process reads
one shard, its rank. With ``SOLVER.ACCUMULATE_STEPS`` S each process stands for S ranks of a
world S times larger: process r reads shards r*S .. r*S+S-1 of world_size*S shards, one
micro-batch of each per iteration, so 1 process x 2 steps sees exactly the images that
2 processes x 1 step see (:mod:`.accumulation`).

Its workers ignore SIGTERM/SIGINT, and start with them blocked: a stop signal sent to the whole
process group is for the rank, which finishes the iteration and saves (:mod:`.interruptions`).
"""
from __future__ import annotations

import atexit
import itertools
import logging
import random
import weakref
from typing import Any, Callable, Iterator, Optional

import torch
from detectron2.data.common import DatasetFromList
from torch.utils.data import DataLoader, Dataset, Sampler

from swin_scratch.engine.interruptions import leave_stop_signals_to_the_rank, stop_signals_deferred
from swin_scratch.engine.rng import preserved_global_rngs, seed_global_rngs

logger = logging.getLogger(__name__)

# (shard, position of the image in that shard's stream, dataset index)
StreamItem = tuple[int, int, int]


def shard_of_index_stream(size: int, seed: int, shard: int, num_shards: int) -> Iterator[int]:
    """Dataset indices of one shard, forever: detectron2's ``TrainingSampler`` order (a seeded
    ``randperm`` per epoch, every ``num_shards``-th index from ``shard``), for any shard count."""

    def infinite_indices() -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(seed)
        while True:
            yield from torch.randperm(size, generator=generator).tolist()

    return itertools.islice(infinite_indices(), shard, None, num_shards)


class AspectRatioBatchSampler(Sampler):
    """Batches of :data:`StreamItem` for one shard, from batch ``start_batch`` on, forever.

    Images are taken in the order of :func:`shard_of_index_stream` and, with ``landscape`` given,
    grouped like detectron2's ``AspectRatioGroupedDataset`` (two buckets: wider than high, or
    not); a bucket becomes a batch when it is full.
    """

    def __init__(self, size: int, batch_size: int, seed: int, landscape: Optional[list[bool]] = None,
                 start_batch: int = 0, shard: int = 0, num_shards: int = 1):
        self._size, self._seed, self._shard, self._num_shards = size, seed, shard, num_shards
        self._batch_size = batch_size
        self._landscape = landscape
        self._start_batch = start_batch

    def _all_batches(self) -> Iterator[list[StreamItem]]:
        buckets: dict[bool, list[StreamItem]] = {True: [], False: []}
        indices = shard_of_index_stream(self._size, self._seed, self._shard, self._num_shards)
        for position, index in enumerate(indices):
            bucket = buckets[self._landscape[index] if self._landscape else False]
            bucket.append((self._shard, position, index))
            if len(bucket) == self._batch_size:
                yield bucket[:]
                bucket.clear()

    def __iter__(self) -> Iterator[list[StreamItem]]:
        return itertools.islice(self._all_batches(), self._start_batch, None)


class MicroBatchSampler(Sampler):
    """Batch k of each shard in turn: k of the first, k of the second, ..., then k + 1 of the first.

    One iteration of a process that accumulates over its shards reads one batch of each.
    """

    def __init__(self, shards: list[AspectRatioBatchSampler]):
        self._shards = shards

    def __iter__(self) -> Iterator[list[StreamItem]]:
        return itertools.chain.from_iterable(zip(*self._shards))


class PositionSeededMapDataset(Dataset):
    """``mapper(dataset[index])`` under RNGs seeded from (seed, shard, position).

    An image the mapper cannot use (it returns None) is replaced by another one drawn from the
    same seeded RNG, as detectron2's ``MapDataset`` does, but reproducibly.
    """

    def __init__(self, dataset_dicts: list[dict[str, Any]], mapper: Callable[[dict], Optional[dict]], seed: int,
                 max_replacements: int = 20):
        self._dataset = DatasetFromList(dataset_dicts, copy=False)  # serialized: workers share, not copy
        self._mapper = mapper
        self._seed = seed
        self._max_replacements = max_replacements

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, item: StreamItem) -> dict[str, Any]:
        shard, position, index = item
        with preserved_global_rngs():
            seed_global_rngs(self._seed, shard, position)
            for _ in range(self._max_replacements):
                mapped = self._mapper(self._dataset[index])
                if mapped is not None:
                    return mapped
                index = random.randrange(len(self._dataset))
        raise RuntimeError(f"{self._max_replacements} images in a row could not be used; check the dataset")


class StopSignalSafeDataLoader(DataLoader):
    """A DataLoader whose workers never die of a stop signal meant for their rank.

    Workers start with SIGTERM/SIGINT blocked and then ignore them (``worker_init_fn``): whatever the
    start method (a rank spawned by ``--num-gpus`` spawns its workers too, and a spawned worker
    would otherwise have the default action, death, until its ``worker_init_fn`` runs).

    Workers that ignore SIGTERM must be shut down before the process exits: multiprocessing's exit
    handler ends daemonic children with SIGTERM and then waits for them, forever if they ignore it.
    The iterators still alive at exit (a trainer kept by a reference cycle or a traceback) are
    shut down first, by :func:`_shut_down_live_workers`.
    """

    def __iter__(self):
        with stop_signals_deferred():  # the workers start here
            iterator = super().__iter__()
        _LIVE_ITERATORS.add(iterator)
        return iterator


_LIVE_ITERATORS: "weakref.WeakSet[Any]" = weakref.WeakSet()


@atexit.register  # registered after multiprocessing's exit handler (torch imports it), so it runs before it
def _shut_down_live_workers() -> None:
    for iterator in list(_LIVE_ITERATORS):
        shut_down = getattr(iterator, "_shutdown_workers", None)  # only the multi-process iterator has workers
        if shut_down is not None:
            shut_down()


def trivial_batch_collator(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Detection models take a list of per-image dicts."""
    return batch


def build_resumable_train_loader(
    dataset_dicts: list[dict[str, Any]],
    mapper: Callable[[dict], Optional[dict]],
    *,
    images_per_batch: int,
    seed: int,
    shards: list[int],
    num_shards: int,
    num_workers: int,
    aspect_ratio_grouping: bool,
    start_batch: int = 0,
) -> StopSignalSafeDataLoader:
    """A loader of ``images_per_batch`` images from each of ``shards`` in turn (of ``num_shards``), whose
    batches from ``start_batch`` on equal those of one started at batch 0."""
    landscape = [record["width"] > record["height"] for record in dataset_dicts] if aspect_ratio_grouping else None
    batches = MicroBatchSampler([
        AspectRatioBatchSampler(len(dataset_dicts), images_per_batch, seed, landscape, start_batch, shard, num_shards)
        for shard in shards
    ])
    return StopSignalSafeDataLoader(
        PositionSeededMapDataset(dataset_dicts, mapper, seed),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=leave_stop_signals_to_the_rank,
    )
