"""The training loop on a tiny model: overfitting, the schedule, the NaN guard, exact resume."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from facegcn_lib.train.metrics_writer import read_metrics
from facegcn_lib.train.train_state import atomic_torch_save, load_train_state
from facegcn_lib.train.trainer import (
    CosineDecayLR,
    NonFiniteLossError,
    StagedDecayLR,
    TrainConfigError,
    Trainer,
    loss_terms,
)
from tests.train.tiny import MARKER, DictFaces, config, l1, make_model

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_overfitting_eight_samples_drives_the_loss_down(tmp_path: Path) -> None:
    cfg = config(epochs=150, batch_size=8, checkpoint_every=1000, log_every=10,
                 deterministic=False, lr=3e-3)
    trainer = Trainer(make_model(dropout=0.0), l1, DictFaces(8), cfg, tmp_path)
    result = trainer.fit()
    losses = [v for _, v in read_metrics(tmp_path / "metrics.csv")["train/loss"]]
    assert result.steps == 150 and len(losses) == 15
    # the mean over steps 141-150 is 20 times below the mean over steps 1-10 (about 30x)
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])


def test_learning_rate_halves_every_quarter_of_the_planned_steps(tmp_path: Path) -> None:
    cfg = config(epochs=4, batch_size=4, log_every=1)  # 24 samples: 6 steps x 4 epochs
    trainer = Trainer(make_model(), l1, DictFaces(24), cfg, tmp_path)
    trainer.fit()
    lrs = [v for _, v in read_metrics(tmp_path / "metrics.csv")["train/lr"]]
    # the rate in force after each step: halved after steps 6, 12 and 18
    expected = [1e-3 * 0.5 ** (s // 6) for s in range(1, 25)]
    assert lrs == pytest.approx(expected, rel=1e-6)


def test_staged_decay_survives_a_new_stage_length() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = StagedDecayLR(opt, step_size=100, gamma=0.5)
    for _ in range(30):
        opt.step()
        sched.step()
    sched.step_size = 10  # a time budget re-planned the run
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [0.125]  # 31 // 10 = 3 halvings


def test_cosine_schedule_falls_from_the_rate_to_its_final_fraction(tmp_path: Path) -> None:
    cfg = config(epochs=4, batch_size=4, log_every=1, lr_schedule="cosine", lr_final=0.1)
    trainer = Trainer(make_model(), l1, DictFaces(24), cfg, tmp_path)  # 24 planned steps
    trainer.fit()
    lrs = [v for _, v in read_metrics(tmp_path / "metrics.csv")["train/lr"]]
    expected = [1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 24))) for s in range(1, 25)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert lrs[-1] == pytest.approx(1e-4) and all(a > b for a, b in itertools.pairwise(lrs))


def test_cosine_decay_matches_torch_cosine_annealing() -> None:
    """The closed form against torch's recursive CosineAnnealingLR (the slow reference)."""
    def rates(make: Callable[[torch.optim.Optimizer], LRScheduler]) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
        sched = make(opt)
        out = []
        for _ in range(40):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr()[0])
        return out

    ours = rates(lambda opt: CosineDecayLR(opt, total_steps=40, final=0.25))
    ref = rates(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40, eta_min=0.5))
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_cosine_decay_survives_a_new_plan_and_a_resume() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = CosineDecayLR(opt, total_steps=1000)
    for _ in range(30):
        opt.step()
        sched.step()
    sched.total_steps = 60  # a time budget re-planned the run: half-way now
    opt.step()
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 31 / 60)))
    again = CosineDecayLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 5)
    again.load_state_dict(sched.state_dict())
    assert again.total_steps == 60 and again.get_lr() == pytest.approx(sched.get_last_lr())
    for _ in range(100):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.0]  # flat at the end of the plan


@pytest.mark.parametrize(("field", "value", "message"), [
    ("lr_schedule", "linear", "lr_schedule must be one of"),
    ("lr_final", 1.5, r"lr_final must be in \[0, 1\]"),
])
def test_bad_schedule_settings_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(TrainConfigError, match=message):
        config(**{field: value})


def test_a_time_budget_stretches_the_cosine_schedule(tmp_path: Path) -> None:
    cfg = config(epochs=100, batch_size=8, max_minutes=0.01, calibration_steps=5,
                 checkpoint_every=1000, log_every=5, deterministic=False, lr_schedule="cosine")
    trainer = Trainer(make_model(), l1, DictFaces(8), cfg, tmp_path,
                      callbacks=[lambda t: time.sleep(0.01)])
    result = trainer.fit()
    assert isinstance(trainer.scheduler, CosineDecayLR)
    assert trainer.scheduler.total_steps == result.planned_steps < 100


def test_validation_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    cfg = config(epochs=3)
    trainer = Trainer(make_model(), l1, DictFaces(24), cfg, tmp_path, val_set=DictFaces(8, 1),
                      metric_name="nme")
    result = trainer.fit()
    val = read_metrics(tmp_path / "metrics.csv")["val/nme"]
    assert [s for s, _ in val] == [6, 12, 18]
    best_step, best = min(val, key=lambda sv: sv[1])
    assert result.best_step == best_step and result.best_metric == pytest.approx(best)
    assert load_train_state(tmp_path / "checkpoints" / "best.pt")["step"] == best_step


def test_a_time_budget_plans_the_steps_and_stretches_the_schedule(tmp_path: Path) -> None:
    cfg = config(epochs=100, batch_size=8, max_minutes=0.01, calibration_steps=5,
                 checkpoint_every=1000, log_every=5, deterministic=False)
    trainer = Trainer(make_model(), l1, DictFaces(8), cfg, tmp_path,
                      callbacks=[lambda t: time.sleep(0.01)])
    result = trainer.fit()
    assert 6 <= result.planned_steps < 100  # 0.54 s of steps at >= 10 ms each
    assert result.steps <= result.planned_steps
    assert trainer.scheduler.step_size == math.ceil(result.planned_steps / 4)
    assert load_train_state(tmp_path / "checkpoints" / "last.pt")["plan_fixed"]


def test_bf16_autocast_trains_on_the_cpu(tmp_path: Path) -> None:
    trainer = Trainer(make_model(), l1, DictFaces(8), config(epochs=3, precision="bf16",
                                                               batch_size=8), tmp_path)
    assert trainer.fit().steps == 3
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


class NaNAtStep:
    """L1, except that the loss of the ``at``-th call (0-based) is NaN."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = l1(pred, target)
        self.calls += 1
        return out * math.nan if self.calls - 1 == self.at else out


def test_nan_loss_stops_with_step_and_batch_after_saving(tmp_path: Path) -> None:
    trainer = Trainer(make_model(), NaNAtStep(3), DictFaces(24), config(checkpoint_every=100),
                      tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"at step 3 \(epoch 0, batch 3 of 6") as err:
        trainer.fit()
    assert "dataset indices [" in str(err.value)
    state = load_train_state(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 3  # the weights before the failing step
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path: Path) -> None:
    def interrupt(trainer: Trainer) -> None:
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = Trainer(make_model(), l1, DictFaces(24), config(checkpoint_every=100), tmp_path,
                      callbacks=[interrupt])
    # the handler before the run (SIG_IGN, not Python's, when the tests run as a background job)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert load_train_state(tmp_path / "checkpoints" / "last.pt")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_resume_refuses_a_different_batch_size(tmp_path: Path) -> None:
    Trainer(make_model(), l1, DictFaces(24), config(epochs=1), tmp_path).fit()
    other = Trainer(make_model(), l1, DictFaces(24), config(epochs=1, batch_size=8), tmp_path)
    with pytest.raises(TrainConfigError, match="batch_size=4"):
        other.fit(resume=True)


def test_resume_refuses_another_schedule_and_accepts_checkpoints_older_than_the_setting(
        tmp_path: Path) -> None:
    Trainer(make_model(), l1, DictFaces(24), config(epochs=1), tmp_path).fit()
    other = Trainer(make_model(), l1, DictFaces(24), config(epochs=1, lr_schedule="cosine"),
                    tmp_path)
    with pytest.raises(TrainConfigError, match="lr_schedule='staged'"):
        other.fit(resume=True)
    # a checkpoint written before lr_schedule existed ran the staged schedule, the default
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_train_state(last)
    del state["train_config"]["lr_schedule"], state["train_config"]["lr_final"]
    atomic_torch_save(state, last)
    again = Trainer(make_model(), l1, DictFaces(24), config(epochs=1), tmp_path)
    assert again.fit(resume=True).steps == 6  # resumed, nothing left to do


def test_atomic_save_never_leaves_a_torn_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    atomic_torch_save({"step": 1}, path)

    def torn(obj: object, f: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_loss_terms_accepts_tensors_namedtuples_and_mappings() -> None:
    from facegcn_lib.train.losses import LossTerms

    t = torch.tensor(2.0)
    assert loss_terms(t)[1] == {"loss": t}
    total, terms = loss_terms(LossTerms(t, torch.tensor(1.5), torch.tensor(5.0)))
    assert total is t and set(terms) == {"loss", "vertex", "smooth"}
    assert set(loss_terms({"total": t, "l1": t})[1]) == {"loss", "l1"}


def test_sigkilled_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """Kill a run two steps after its step-4 checkpoint (mid-epoch), resume it to the end."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tests.train.tiny", str(killed),
                             "--hang-after", "6"], cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        # meanwhile, the uninterrupted run (12 steps: 2 epochs of 6, dropout on)
        straight = Trainer(make_model(), l1, DictFaces(24), config(), tmp_path / "straight",
                           val_set=DictFaces(8, seed=1))
        straight.fit()
        deadline = time.monotonic() + 120
        while not (killed / MARKER).exists():
            assert proc.poll() is None, "the run to be killed ended early"
            assert time.monotonic() < deadline, "the run to be killed never reached step 6"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert load_train_state(killed / "checkpoints" / "last.pt")["step"] == 4

    resumed = Trainer(make_model(seed=123), l1, DictFaces(24), config(), killed,
                      val_set=DictFaces(8, seed=1))
    result = resumed.fit(resume=True)
    assert result.steps == 12
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    # the resumed log has each step once, as the straight run's
    steps = [s for s, _ in read_metrics(killed / "metrics.csv")["train/loss"]]
    assert steps == [2, 4, 6, 8, 10, 12]
