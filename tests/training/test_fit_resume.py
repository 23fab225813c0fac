"""fit(): safetensors checkpoints and exact resume (model, optimizer, scheduler, data position)."""

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from toolkit.errors import ToolkitError
from toolkit.training import fit, load_state, save_state


class CountingSampler(Sampler[int]):
    """A shuffled sampler that remembers how far into the epoch it got."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0
        self.served = 0

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        start, self.start = self.start, 0
        for self.served, idx in enumerate(order[start:], start=start + 1):
            yield idx
        self.epoch += 1
        self.served = 0

    def __len__(self) -> int:
        return self.n


class StatefulLoader(DataLoader):
    def state_dict(self):
        return {"epoch": self.sampler.epoch, "served": self.sampler.served}

    def load_state_dict(self, state):
        self.sampler.epoch, self.sampler.start = state["epoch"], state["served"]


class Regressor(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-2, betas=(0.8, 0.95))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def loader() -> StatefulLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g)
    data = list(zip(x, x.sum(-1, keepdim=True).sin()))
    return StatefulLoader(data, batch_size=4, sampler=CountingSampler(len(data), seed=3))


KW = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "logger": False}


def test_interrupted_run_resumes_exactly(tmp_path: Path) -> None:
    straight = Regressor()
    fit(straight, loader(), tmp_path / "a", KW, max_steps=14)  # crosses an epoch (10 batches)
    first = Regressor()
    fit(first, loader(), tmp_path / "b", KW, max_steps=6)
    resumed = Regressor()
    trainer = fit(resumed, loader(), tmp_path / "b", KW, max_steps=14)
    assert trainer.global_step == 14
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    ckpt = tmp_path / "b" / "checkpoints" / "last.ckpt"
    assert ckpt.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle


def test_state_roundtrip_keeps_types(tmp_path: Path) -> None:
    state = {"a": (1, 2.5, None), 3: {"t": torch.arange(3)}, "d": torch.float32, "s": [True, "x"]}
    back = load_state(save_state(tmp_path / "s.ckpt", state))
    assert back["a"] == (1, 2.5, None) and back["d"] is torch.float32 and back["s"] == [True, "x"]
    assert torch.equal(back[3]["t"], torch.arange(3))


def test_damaged_checkpoint_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ToolkitError, match="not a readable checkpoint"):
        load_state(bad)
    with pytest.raises(ToolkitError, match="plain data"):
        save_state(tmp_path / "x.ckpt", {"obj": object()})
    assert not (tmp_path / "x.ckpt").exists()
