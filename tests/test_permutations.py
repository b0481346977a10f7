import json

import pytest
import torch
from conftest import DATA

from spot_tutorial.model.permutations import (
    ORDER_NAMES,
    inverse_orders,
    order_grid,
    patch_orders,
    select_orders,
)


@pytest.mark.parametrize("side", range(2, 17))
def test_orders_equal_reference_file(side):
    reference = json.loads((DATA / "permutations.json").read_text())["orders"][str(side)]
    assert patch_orders(side).tolist() == reference


@pytest.mark.parametrize("side", [1, 3, 14])
def test_every_order_is_a_permutation_and_inverse_undoes_it(side):
    orders = patch_orders(side)
    assert orders.shape == (len(ORDER_NAMES), side * side)
    assert torch.equal(orders.sort(dim=1).values, torch.arange(side * side).expand_as(orders))
    inverse = inverse_orders(orders)
    tokens = torch.randn(side * side)
    for order, inv in zip(orders, inverse, strict=False):
        assert torch.equal(tokens[order][inv], tokens)


def test_named_orders_on_a_3x3_grid():
    orders = patch_orders(3)
    assert orders[0].tolist() == list(range(9))                  # raster
    assert orders[1].tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]     # column-major from top-left
    assert orders[5].tolist() == list(range(8, -1, -1))          # full reverse
    assert order_grid(orders[8], 3)[1, 1] == 0                   # spiral starts in the centre


def test_select_orders_modes():
    assert select_orders("standard") == [0]
    assert select_orders("all") == list(range(9))
    assert select_orders([2, 5]) == [2, 5]
    drawn = {select_orders("random")[0] for _ in range(300)}
    assert drawn == set(range(9))
    with pytest.raises(ValueError, match="choose one of"):
        select_orders("spiral")
    with pytest.raises(ValueError, match="order ids"):
        select_orders([9])
    with pytest.raises(ValueError, match="1 order"):
        select_orders([3], num_orders=1)
