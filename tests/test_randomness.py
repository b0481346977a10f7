"""Tests for spot_tutorial.runtime: seeding, saving and restoring the generators' states."""

import random

import numpy as np
import torch

from spot_tutorial.io.checkpoint_file import atomic_save, safe_load
from spot_tutorial.runtime import capture_rng_state, isolated_rng, restore_rng_state, seed_everything


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_every_generator():
    seed_everything(5)
    first = draws()
    seed_everything(5)
    assert draws() == first
    seed_everything(6)
    assert draws() != first


def test_a_saved_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(0)
    draws()
    atomic_save({"rng": [capture_rng_state()]}, tmp_path / "state.pt")
    expected = [draws() for _ in range(3)]
    seed_everything(123)  # anything else in between
    draws()
    restore_rng_state(safe_load(tmp_path / "state.pt")["rng"][0])
    assert [draws() for _ in range(3)] == expected


def test_isolated_rng_neither_reads_nor_moves_the_outer_state():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with isolated_rng(torch.device("cpu"), seed=42):
        inside = torch.rand(2)
    assert torch.equal(torch.rand(3), expected)     # training continues as if nothing was drawn
    torch.manual_seed(999)
    with isolated_rng(torch.device("cpu"), seed=42):
        assert torch.equal(torch.rand(2), inside)   # the same draws inside, whatever the outer state
