"""The words for patch orders (paper, section 3.3), and the one check of an order choice.

SPOT's autoregressive decoder reads the patches in one of nine orders; order id 0 is the
raster order ('standard'), ids 1..8 are the other eight (`spot_tutorial.model.permutations`
builds them). A run names the orders it uses with an `OrderSpec`:

    'standard'   order 0 only (raster order)
    'random'     one order drawn per batch (the paper's training)
    'all'        every order the model has a [BOS] token for
    [0, 5, 8]    an explicit list of order ids

One vocabulary everywhere (code, CLI, checkpoints, book): a *patch order* is one way of reading
the token grid, an *order id* numbers it, and the settings that choose them are `train_orders` /
`eval_orders` (``--train-orders``, ``--eval-orders``; ``forward(images, orders=...)``). The
paper's technique keeps its name, patch-order *permutation*: training in randomly permuted
orders; hence `model.permutations`, which builds the nine orders. Checkpoints and command lines
with the older names (`train_permutations`, ``--eval-permutations``) still work.

This module sits beside `spot_tutorial.errors` at the bottom of the package: the configuration,
the permutations and the decoders all check order choices here.
"""

from __future__ import annotations

from typing import Sequence, Union

from spot_tutorial.errors import ConfigError, InputError

ORDER_MODES = ("standard", "random", "all")
NUM_ORDERS = 9

# 'standard' | 'random' | 'all' or an explicit list of order ids (0..8).
OrderSpec = Union[str, Sequence[int]]


def check_order_spec(spec: OrderSpec, name: str = "orders") -> None:
    """Check a patch-order choice: a mode name or a non-empty list of order ids 0..8."""
    if isinstance(spec, str):
        if spec not in ORDER_MODES:
            raise ConfigError(f"{name}={spec!r}; choose one of {ORDER_MODES} or a list of order ids 0..8")
        return
    ids = list(spec)
    if not ids or not all(isinstance(i, int) and 0 <= i < NUM_ORDERS for i in ids):
        raise ConfigError(f"{name}={spec!r}: an explicit order list must hold order ids between 0 and 8")


def check_order_ids(order_ids: Sequence[int], num_orders: int, where: str = "this model") -> None:
    """Refuse order ids without a [BOS] token: a model with ``num_orders`` decodes 0..num_orders-1."""
    unknown = [int(i) for i in order_ids if not 0 <= int(i) < num_orders]
    if order_ids and not unknown:
        return
    hint = (". It was trained on raster order only: use orders='standard'"
            if num_orders == 1 else ", or orders='standard' (raster order)")
    raise InputError(f"order ids {unknown or list(order_ids)} are not available: {where} knows "
                     f"{num_orders} order(s) ({num_orders} [BOS] token(s)), so it decodes order ids "
                     f"0..{num_orders - 1} only; got {list(order_ids)}{hint}")
