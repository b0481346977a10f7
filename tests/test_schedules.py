"""Tests for spot_tutorial.training.schedules: learning rate, CE weight, and T fit to a time budget."""

import pytest

from spot_tutorial import get_preset
from spot_tutorial.training.schedules import (
    ce_weight,
    fits_time_budget,
    learning_rate,
    planned_steps,
    steps_in_budget,
)


def test_learning_rate_warmup_then_cosine_at_known_steps():
    config = get_preset("tiny", lr_main=1e-3, lr_min=1e-5, lr_warmup_steps=10)
    total = 110
    assert learning_rate(0, total, config) == 0.0
    assert learning_rate(5, total, config) == pytest.approx(5e-4)
    assert learning_rate(10, total, config) == pytest.approx(1e-3)
    assert learning_rate(60, total, config) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way down
    assert learning_rate(110, total, config) == pytest.approx(1e-5)
    assert learning_rate(500, total, config) == pytest.approx(1e-5)             # stays at lr_min
    values = [learning_rate(s, total, config) for s in range(10, 111)]
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))  # monotone decay


def test_ce_weight_constant_or_cosine_to_zero():
    constant = get_preset("tiny", ce_weight=0.005)
    assert ce_weight(0, 100, constant) == ce_weight(77, 100, constant) == 0.005
    cosine = get_preset("tiny", ce_weight=0.005, cosine_ce_weight=True)
    assert ce_weight(0, 100, cosine) == pytest.approx(0.005)
    assert ce_weight(50, 100, cosine) == pytest.approx(0.0025)
    assert ce_weight(100, 100, cosine) == pytest.approx(0.0, abs=1e-12)


def test_planned_steps_are_max_steps_or_whole_epochs():
    assert planned_steps(get_preset("tiny", max_steps=7, epochs=3), steps_per_epoch=10) == 7
    assert planned_steps(get_preset("tiny", max_steps=0, epochs=3), steps_per_epoch=10) == 30


def test_time_budget_fits_the_schedule_to_the_measured_speed():
    budget = get_preset("tiny", max_minutes=2.0, max_steps=0, epochs=1000)
    assert fits_time_budget(budget)
    assert not fits_time_budget(budget.replace(max_steps=50))   # max_steps wins over the budget
    assert not fits_time_budget(budget.replace(max_minutes=0.0))
    # 100 steps in 30 s: 400 steps fit in 120 s; never more than the planned steps
    assert steps_in_budget(100, 30.0, planned=10_000, config=budget) == pytest.approx(400.0)
    assert steps_in_budget(100, 30.0, planned=250, config=budget) == 250.0
    # slower later steps shrink T again
    assert steps_in_budget(300, 120.0, planned=10_000, config=budget) == pytest.approx(300.0)
