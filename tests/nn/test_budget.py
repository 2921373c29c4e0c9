"""Training within a wall-time budget: speed measured on real batches, epochs sized."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cyto.data import write_crop_store
from cyto.nn import EpochBudget, StepPlan, cosine_lr, measure_train_speed, plan_steps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(40, 2, 32, 32)).astype(np.float16)
    prot = np.repeat([f"P{k}" for k in range(4)], 10)
    fov = np.array([f"{p}-{i % 5}" for i, p in enumerate(prot)])
    return write_crop_store(tmp_path / "c.h5", crops, prot, fov_ids=fov)


def test_measured_speeds_are_positive_and_leave_the_caller_state_alone(store):
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    train_rate, eval_rate = measure_train_speed(store, preset="tiny", batch_size=8, steps=2)
    assert 0 < train_rate < eval_rate  # a forward pass is cheaper than a training step
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="fewer than one batch"):
        measure_train_speed(store, preset="tiny", batch_size=64)
    with pytest.raises(ValueError, match="`steps` and `batch_size` must be >= 1"):
        measure_train_speed(store, preset="tiny", batch_size=8, steps=0)


def test_plan_keeps_full_epochs_when_they_fit_and_caps_them_otherwise():
    common = dict(eval_images_per_s=200.0, n_train=6400, n_val=800, batch_size=32, max_epochs=3)
    fast = plan_steps(600.0, images_per_s=100.0, **common)
    assert fast.steps_per_epoch == fast.full_steps == 200 and not fast.capped
    assert fast.estimated_s <= 600.0
    assert "full epochs of 200 steps" in fast.describe()
    slow = plan_steps(240.0, images_per_s=50.0, **common)
    assert slow.capped and 1 <= slow.steps_per_epoch < 200
    # the estimate fits the budget, one more step per epoch would not (steps in the loop
    # are taken to run at 0.88 of the measured rate)
    assert slow.estimated_s <= 240.0 < slow.estimated_s + 3 * 32 / (50.0 * 0.88)
    assert "of 200 steps per epoch to fit the 240 s budget" in slow.describe()
    # a budget too small for anything still trains one step per epoch
    assert plan_steps(1.0, images_per_s=50.0, **common).steps_per_epoch == 1
    saved = slow.to_dict()
    assert saved["capped"] is True
    assert StepPlan(**{k: v for k, v in saved.items() if k != "capped"}) == slow
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`budget_s` must be a finite number > 0"):
            plan_steps(bad, images_per_s=50.0, **common)
    with pytest.raises(ValueError, match="`images_per_s` must be a finite number > 0"):
        plan_steps(60.0, images_per_s=0.0, **common)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_budget(clock, budget_s=100.0, rates=(None, None)):
    return EpochBudget(
        budget_s,
        max_epochs=3,
        batch_size=8,
        n_val=16,
        images_per_s=rates[0],
        eval_images_per_s=rates[1],
        lr=1e-3,
        min_lr=1e-6,
        clock=clock,
    )


def test_epoch_budget_keeps_full_epochs_and_the_plain_cosine_when_they_fit():
    clock = Clock()
    budget = make_budget(clock, rates=(800.0, 3200.0))  # 0.01 s a step: 30 steps fit
    step = 0
    for epoch in range(3):
        assert budget.plan_epoch(epoch, 10, step) == 10
        for _ in range(10):
            assert budget.lr_at(step) == pytest.approx(
                cosine_lr(step, total=30, lr=1e-3, min_lr=1e-6), rel=1e-12, abs=1e-15
            )
            step += 1
            clock.now += 0.01
        budget.observe(train_s=0.1, steps=10, val_s=0.01)
    assert budget.summary()["epoch_steps"] == [10, 10, 10]
    assert budget.plan_epoch(0, 10, 0) == 10  # a planned epoch keeps its steps


def test_epoch_budget_shortens_later_epochs_when_the_machine_slows_down():
    clock = Clock()
    budget = make_budget(clock, budget_s=30.0)  # no first measurement: epoch 1 in full
    assert budget.plan_epoch(0, 10, 0) == 10
    lrs = []
    for step in range(10):
        lrs.append(budget.lr_at(step))
        clock.now += 1.0  # 1 s a step: 10 s gone, 20 s left for two epochs
    budget.observe(train_s=10.0, steps=10, val_s=1.0)
    assert budget.plan_epoch(1, 10, 10) == 9  # (20 - 2 x 1) / (2 x 1 s)
    state = budget.state_dict()
    # the schedule continues from where it was and reaches min_lr after the last step (27)
    before = budget.lr_at(10)
    assert before == pytest.approx(cosine_lr(10, total=30, lr=1e-3, min_lr=1e-6), rel=1e-12)
    assert lrs[-1] > before
    assert budget.lr_at(27) > budget.lr_at(28) == pytest.approx(1e-6)
    # a resumed run continues the budget: time spent, plans, the schedule
    again = make_budget(Clock(), budget_s=30.0)
    again.load_state_dict(state)
    assert again.elapsed() == pytest.approx(10.0)
    assert again.plan_epoch(1, 10, 10) == 9 and again.lr_at(20) == budget.lr_at(20)


def test_epoch_budget_rejects_a_budget_it_cannot_plan():
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`budget_s` must be a finite number > 0"):
            make_budget(Clock(), budget_s=bad)
    with pytest.raises(ValueError, match="`max_epochs` and `batch_size` must be >= 1"):
        EpochBudget(
            10.0,
            max_epochs=0,
            batch_size=8,
            n_val=1,
            images_per_s=None,
            eval_images_per_s=None,
            lr=1e-3,
            min_lr=0.0,
        )
