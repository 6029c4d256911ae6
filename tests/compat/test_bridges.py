"""Bridges between detectron2 versions (swin_scratch/compat/bridges.py) work on the installed
detectron2 and are all listed in docs/detectron2-bridges.md."""
from __future__ import annotations

import torch
import torch.distributed as dist
from detectron2.engine import DefaultTrainer, SimpleTrainer
from detectron2.utils import comm
from detectron2.utils.events import EventStorage
from torch import nn

from helpers.shapes import REPO
from swin_scratch.compat import bridges


class _ConstantLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, batch):
        return {"loss": (self.weight * batch[0]).sum()}


def _simple_trainer(loader) -> SimpleTrainer:
    model = _ConstantLoss()
    return SimpleTrainer(model, loader, torch.optim.AdamW(model.parameters(), lr=0.1))


def test_every_bridge_is_in_the_docs_table():
    table = (REPO / "docs/detectron2-bridges.md").read_text()
    for bridge in bridges.BRIDGES:
        assert f"| `{bridge.name}` |" in table, bridge.name
        assert bridge.used_in.split()[0] in table


def test_replaced_data_loader_is_the_one_the_trainer_reads():
    trainer = _simple_trainer([[torch.tensor([1.0])]] * 3)
    bridges.replace_data_loader(trainer, [[torch.tensor([7.0])]] * 3)
    assert torch.equal(next(trainer._data_loader_iter)[0], torch.tensor([7.0]))


def test_inner_trainer_state_round_trips_the_optimizer_moments():
    trainer = _simple_trainer([[torch.tensor([1.0])]] * 3)
    trainer.iter = 0
    with EventStorage(0):
        trainer.run_step()
    state: dict = {}
    bridges.save_inner_trainer_state(state, trainer)
    fresh = _simple_trainer([[torch.tensor([1.0])]])
    bridges.load_inner_trainer_state(state, fresh)
    if bridges._default_trainer_checkpoints_inner_trainer():
        # upstream main: DefaultTrainer.load_state_dict loads '_trainer' itself, so the bridge must not
        assert not fresh.optimizer.state_dict()["state"]
        outer = DefaultTrainer.__new__(DefaultTrainer)  # only what load_state_dict reads
        outer._trainer, outer._hooks = fresh, []
        outer.load_state_dict(state | {"iteration": 0, "hooks": {}})
    saved = trainer.optimizer.state_dict()["state"][0]
    loaded = fresh.optimizer.state_dict()["state"][0]
    assert torch.equal(saved["exp_avg"], loaded["exp_avg"]) and torch.equal(saved["exp_avg_sq"], loaded["exp_avg_sq"])


def test_local_process_group_gives_detectron2_the_local_rank(tmp_path):
    previous = comm._LOCAL_PROCESS_GROUP
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        bridges.create_local_process_group(1)
        assert (comm.get_local_rank(), comm.get_local_size()) == (0, 1)
    finally:
        dist.destroy_process_group()
        comm._LOCAL_PROCESS_GROUP = previous
