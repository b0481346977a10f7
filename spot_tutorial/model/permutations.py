"""The nine patch orders of SPOT's autoregressive decoder (paper, section 3.2).

An order lists the raster indices ``row * side + col`` of a square token grid in the order the
decoder predicts them. Order 0 is the raster order; the other eight walk the grid by columns or
rows from each corner, and the last one is a spiral. Training with a random order per batch
("patch-order permutation") stops the decoder from leaning on the previously decoded tokens and
makes it use the slots.
"""

from __future__ import annotations

from typing import Sequence

import torch

from spot_tutorial.orders import NUM_ORDERS, OrderSpec, check_order_ids, check_order_spec

ORDER_NAMES = (
    "raster (row-major from top-left)",
    "column-major from top-left",
    "column-major from top-right",
    "row-major from top-right",
    "column-major from bottom-right",
    "row-major from bottom-right",
    "column-major from bottom-left",
    "row-major from bottom-left",
    "spiral",
)


def _walk(side: int, rows: range, cols: range, column_major: bool) -> list[int]:
    if column_major:
        return [r * side + c for c in cols for r in rows]
    return [r * side + c for r in rows for c in cols]


def spiral_order(side: int) -> list[int]:
    """Spiral from the centre outwards, as in the authors' checkpoints.

    Starts at cell ((side-1)//2, (side-1)//2) and turns counter-clockwise with legs of
    length 1, 1, 2, 2, 3, 3, ...; for odd sides the first step goes up, for even sides down.
    """
    row = col = (side - 1) // 2
    directions = [(-1, 0), (0, -1), (1, 0), (0, 1)]  # up, left, down, right
    if side % 2 == 0:
        directions = [(1, 0), (0, 1), (-1, 0), (0, -1)]  # down, right, up, left
    order, leg, turn = [row * side + col], 1, 0
    while len(order) < side * side:
        for _ in range(2):
            d_row, d_col = directions[turn % 4]
            for _ in range(leg):
                row, col = row + d_row, col + d_col
                if 0 <= row < side and 0 <= col < side:
                    order.append(row * side + col)
            turn += 1
        leg += 1
    return order


def patch_orders(side: int) -> torch.Tensor:
    """All nine orders for a ``side x side`` grid.  # [9, side*side] int64"""
    if side < 1:
        raise ValueError(f"grid side must be >= 1, got {side}")
    up, down = range(side), range(side - 1, -1, -1)
    orders = [
        _walk(side, up, up, column_major=False),
        _walk(side, up, up, column_major=True),
        _walk(side, up, down, column_major=True),
        _walk(side, up, down, column_major=False),
        _walk(side, down, down, column_major=True),
        _walk(side, down, down, column_major=False),
        _walk(side, down, up, column_major=True),
        _walk(side, down, up, column_major=False),
        spiral_order(side),
    ]
    return torch.tensor(orders, dtype=torch.long)


def inverse_orders(orders: torch.Tensor) -> torch.Tensor:
    """``inverse[p][orders[p][t]] = t``: puts decoded tokens back into raster order."""
    return torch.argsort(orders, dim=-1)


def select_orders(spec: OrderSpec, num_orders: int = NUM_ORDERS,
                  generator: torch.Generator | None = None) -> list[int]:
    """Order ids for one forward pass.

    'standard' -> [0]; 'random' -> one id drawn uniformly (one order per batch, as in the paper);
    'all' -> every id; an explicit list of ids is returned as it is.
    """
    check_order_spec(spec)
    if spec == "standard":
        return [0]
    if spec == "random":
        return [int(torch.randint(num_orders, (1,), generator=generator))]
    if spec == "all":
        return list(range(num_orders))
    ids = [int(i) for i in spec]  # type: ignore[union-attr]
    check_order_ids(ids, num_orders)
    return ids


def order_grid(order: Sequence[int], side: int) -> torch.Tensor:
    """Step at which each cell is decoded, as a [side, side] grid (for figures)."""
    steps = torch.empty(side * side, dtype=torch.long)
    steps[torch.as_tensor(order)] = torch.arange(side * side)
    return steps.view(side, side)
