"""The weight average: its arithmetic against a slow reference, buffers, and the trainer's use."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import scipy.sparse as sp
import torch
from torch import nn

from facegcn_lib.nn.sparse import to_torch_sparse
from facegcn_lib.train.ema import WARMUP_OFFSET, WeightAverage, WeightAverageError
from facegcn_lib.train.train_state import load_train_state
from facegcn_lib.train.trainer import TrainConfigError, Trainer
from tests.train.tiny import DictFaces, config, l1, make_model

pytestmark = pytest.mark.usefixtures("one_thread")


class NormNet(nn.Module):
    """A conv with batch normalisation (float and integer buffers) and a sparse constant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("graph", to_torch_sparse(sp.eye(4, format="csr")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x)).mean(dim=(2, 3))  # (B, 4)
        return (self.graph @ h.T).T


def _randomise(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


def test_decays_outside_zero_one_are_refused() -> None:
    for decay in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(WeightAverageError, match=r"in \(0, 1\)"):
            WeightAverage(make_model(), decay)


def test_the_warm_up_keeps_early_averages_near_the_weights() -> None:
    ema = WeightAverage(make_model(), decay=0.998)
    decays = []
    for _ in range(6000):  # the warm-up reaches 0.998 after about 4,500 updates
        decays.append(ema.current_decay())
        ema.updates += 1
    assert decays[0] == pytest.approx(1.0 / WARMUP_OFFSET)
    assert all(a <= b for a, b in itertools.pairwise(decays))
    assert decays[-1] == pytest.approx(0.998)


def test_updates_equal_a_slow_reference() -> None:
    model = make_model()
    ema = WeightAverage(model, decay=0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(5):
        _randomise(model, step)
        d = min(0.9, (1.0 + step) / (WARMUP_OFFSET + step))
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1.0 - d) * v
        ema.update(model)
    got = ema.module.state_dict()
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)
    assert ema.updates == 5


def test_float_buffers_are_averaged_integers_copied_sparse_constants_shared() -> None:
    model = NormNet()
    ema = WeightAverage(model, decay=0.5)
    ema.updates = 100  # past the warm-up: the decay is 0.5
    model.train()
    model(torch.rand(8, 3, 6, 6))  # moves the running statistics and counts one batch
    ema.update(model)
    init_mean = torch.zeros(4)
    assert torch.allclose(ema.module.bn.running_mean, 0.5 * init_mean + 0.5 * model.bn.running_mean)
    assert int(ema.module.bn.num_batches_tracked) == 1
    assert ema.module.graph is model.graph
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training
    x = torch.rand(2, 3, 6, 6)
    assert ema(x).shape == (2, 4)


def test_state_round_trip_and_a_wrong_model_is_refused() -> None:
    model = make_model()
    ema = WeightAverage(model, decay=0.99)
    _randomise(model, 1)
    ema.update(model)
    other = WeightAverage(make_model(seed=5), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    a, b = ema.module.state_dict(), other.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(WeightAverageError, match="does not fit this model"):
        WeightAverage(NormNet(), 0.99).load_state_dict(ema.state_dict())
    assert "decay=0.99" in repr(ema)


def test_the_trainer_validates_and_saves_the_average(tmp_path: Path) -> None:
    cfg = config(epochs=2, ema_decay=0.9)
    trainer = Trainer(make_model(), l1, DictFaces(24), cfg, tmp_path, val_set=DictFaces(8, seed=1))
    trainer.fit()
    assert trainer.ema is not None and trainer.ema.updates == 12
    assert trainer.eval_model is trainer.ema.module
    state = load_train_state(trainer.last_checkpoint)
    assert state["ema"]["updates"] == 12
    saved = state["ema"]["model"]
    live = trainer.ema.module.state_dict()
    assert all(torch.equal(saved[k], live[k]) for k in live)
    # the average differs from the raw weights, and the validation metric is the average's
    raw = trainer.model.state_dict()
    assert any(not torch.equal(raw[k], live[k]) for k in raw)
    with torch.no_grad():
        x, y = DictFaces(8, seed=1).images, DictFaces(8, seed=1).points
        expected = (trainer.ema.module(x) - y).norm(dim=-1).mean()
    assert trainer.best_metric is not None
    assert trainer.evaluate()["error"] == pytest.approx(float(expected), rel=1e-5)


def test_the_training_is_the_same_with_and_without_the_average(tmp_path: Path) -> None:
    plain = Trainer(make_model(), l1, DictFaces(24), config(), tmp_path / "plain")
    plain.fit()
    averaged = Trainer(make_model(), l1, DictFaces(24), config(ema_decay=0.9), tmp_path / "ema")
    averaged.fit()
    a, b = plain.model.state_dict(), averaged.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_restores_the_average_and_refuses_another_decay(tmp_path: Path) -> None:
    straight = Trainer(make_model(), l1, DictFaces(24), config(ema_decay=0.9), tmp_path / "straight")
    straight.fit()
    def stop_at_six(t: Trainer) -> None:  # as Ctrl-C after step 6 would
        if t.step == 6:
            t._stop_signal = 2

    half = Trainer(make_model(), l1, DictFaces(24), config(ema_decay=0.9), tmp_path / "half",
                   callbacks=[stop_at_six])
    with pytest.raises(KeyboardInterrupt):
        half.fit()
    with pytest.raises(TrainConfigError, match="ema_decay"):
        Trainer(make_model(), l1, DictFaces(24), config(ema_decay=0.8), tmp_path / "half").fit(
            resume=True)
    resumed = Trainer(make_model(seed=3), l1, DictFaces(24), config(ema_decay=0.9),
                      tmp_path / "half")
    resumed.fit(resume=True)
    assert resumed.ema is not None and resumed.ema.updates == 12
    a, b = straight.ema.module.state_dict(), resumed.ema.module.state_dict()  # type: ignore[union-attr]
    assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_bad_decays_are_refused_by_the_config(decay: float) -> None:
    with pytest.raises(TrainConfigError, match="ema_decay"):
        config(ema_decay=decay)
