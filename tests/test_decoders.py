import pytest
import torch

from spot_tutorial.model.decoders import AutoregressiveDecoder, MLPDecoder, TransformerDecoderBlock

D, S, K, SIDE = 16, 8, 3, 4
N = SIDE * SIDE


def make_decoder(impl="math", blocks=2):
    return AutoregressiveDecoder(d_model=D, slot_size=S, num_patches=N, num_blocks=blocks,
                                 num_heads=2, num_orders=9, attention_impl=impl).eval()


@pytest.mark.parametrize("impl", ["math", "sdpa"])
@pytest.mark.parametrize("order_id", [0, 4, 8])
def test_causality_in_decoding_order(impl, order_id, decoder=None):
    decoder = decoder or make_decoder(impl)
    slots, targets = torch.randn(2, K, S), torch.randn(2, N, D)
    order = decoder.orders[order_id]
    step = 6
    changed = targets.clone()
    changed[:, order[step:]] += torch.randn(2, N - step, D)  # change tokens from `step` on
    before = decoder(slots, targets, [order_id])
    after = decoder(slots, changed, [order_id])
    # output at decoding position t sees targets of positions < t only
    keep = order[: step + 1]
    torch.testing.assert_close(before.reconstruction[:, keep], after.reconstruction[:, keep])
    torch.testing.assert_close(before.masks[:, keep], after.masks[:, keep])
    later = order[step + 1:]
    assert not torch.allclose(before.reconstruction[:, later], after.reconstruction[:, later])


def test_all_orders_equal_the_mean_of_the_nine_single_orders():
    decoder = make_decoder()
    slots, targets = torch.randn(2, K, S), torch.randn(2, N, D)
    together = decoder(slots, targets, list(range(9)))
    singles = [decoder(slots, targets, [p]) for p in range(9)]
    torch.testing.assert_close(together.reconstruction,
                               torch.stack([s.reconstruction for s in singles]).mean(0))
    torch.testing.assert_close(together.masks, torch.stack([s.masks for s in singles]).mean(0))
    # and the orders really differ from each other
    assert not torch.allclose(singles[0].reconstruction, singles[5].reconstruction)


def test_sdpa_equals_reference_math(reference=None):
    reference = reference or make_decoder("math")
    fast = make_decoder("sdpa")
    fast.load_state_dict(reference.state_dict())
    slots, targets = torch.randn(2, K, S), torch.randn(2, N, D)
    for orders in ([0], [3], list(range(9))):
        a, b = reference(slots, targets, orders), fast(slots, targets, orders)
        torch.testing.assert_close(a.reconstruction, b.reconstruction, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.masks, b.masks, atol=1e-6, rtol=1e-5)
    # equal, and not trivially so: the outputs depend on the slots
    other = reference(torch.randn(2, K, S), targets, [0])
    assert (other.reconstruction - reference(slots, targets, [0]).reconstruction).abs().max() > 1e-3


def check_masks_are_the_last_cross_attention_in_raster_order(decoder):
    slots, targets = torch.randn(1, K, S), torch.randn(1, N, D)
    out = decoder(slots, targets, [5])  # full reverse order
    torch.testing.assert_close(out.masks.sum(-1), torch.ones(1, N))
    # recompute by hand: weights of the last block's cross-attention, summed over heads
    tokens = decoder.decoder_inputs(targets, [5])
    slot_tokens = decoder.slot_proj(slots)
    for block in decoder.transformer.blocks:
        tokens, weights = block(tokens, slot_tokens, need_weights=True, impl="math")
    by_hand = weights.sum(1)
    by_hand = by_hand / by_hand.sum(-1, keepdim=True)
    torch.testing.assert_close(out.masks[0], by_hand[0].flip(0))  # reverse order -> flip back
    # the masks carry information: they differ from token to token (uniform masks flip to
    # themselves, so the comparison above alone would accept a decoder that ignores its inputs)
    assert out.masks[0].std(dim=0).min() > 1e-3


def test_decoder_masks_are_the_last_cross_attention_in_raster_order():
    check_masks_are_the_last_cross_attention_in_raster_order(make_decoder())


def zeroed(decoder):
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.zero_()
    return decoder


def test_the_checks_fail_for_a_decoder_with_zero_weights():
    """A decoder that outputs constants must not pass the behaviour tests above."""
    with pytest.raises(AssertionError):
        check_masks_are_the_last_cross_attention_in_raster_order(zeroed(make_decoder()))
    with pytest.raises(AssertionError):
        test_causality_in_decoding_order("math", 4, decoder=zeroed(make_decoder()))
    with pytest.raises(AssertionError):
        test_sdpa_equals_reference_math(reference=zeroed(make_decoder()))


def test_one_bos_token_decodes_raster_order_only():
    decoder = AutoregressiveDecoder(D, S, N, num_blocks=1, num_heads=2, num_orders=1)
    assert decoder.bos_tokens.shape == (1, 1, 1, D)
    out = decoder(torch.randn(1, K, S), torch.randn(1, N, D), [0])
    assert out.reconstruction.shape == (1, N, D)
    with pytest.raises(ValueError, match=r"1 \[BOS\] token.*got \[3\].*orders='standard'"):
        decoder(torch.randn(1, K, S), torch.randn(1, N, D), [3])


def test_first_block_layernorm_replaces_the_residual_stream():
    block = TransformerDecoderBlock(D, 2, gain=1.0, is_first=True)
    later = TransformerDecoderBlock(D, 2, gain=1.0, is_first=False)
    for b in (block, later):  # silence every branch: the block reduces to its residual stream
        for layer in (b.self_attn.proj_o, b.cross_attn.proj_o, b.ffn[2]):
            torch.nn.init.zeros_(layer.weight)
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)
    tokens, slots = torch.randn(2, N, D) * 3 + 1, torch.randn(2, K, D)
    out_first, _ = block(tokens, slots, need_weights=False, impl="math")
    out_later, _ = later(tokens, slots, need_weights=False, impl="math")
    torch.testing.assert_close(out_first, block.self_attn_norm(tokens))  # the quirk
    torch.testing.assert_close(out_later, tokens)                        # plain pre-LN


def test_output_projection_gain_and_bias_free_projections():
    decoder = AutoregressiveDecoder(D, S, N, num_blocks=4, num_heads=2)
    block = decoder.transformer.blocks[0]
    assert block.self_attn.proj_q.bias is None and block.cross_attn.proj_o.bias is None
    bound = (3 * 4) ** -0.5 * (6 / (D + D)) ** 0.5  # xavier-uniform bound with gain (3*blocks)^-0.5
    assert block.self_attn.proj_o.weight.abs().max() <= bound
    assert decoder.bos_tokens.shape == (9, 1, 1, D)


def test_mlp_decoder_mixes_slot_predictions_with_alpha_masks():
    decoder = MLPDecoder(D, S, N, hidden_size=32)
    slots = torch.randn(2, K, S)
    out = decoder(slots)
    assert out.reconstruction.shape == (2, N, D) and out.masks.shape == (2, N, K)
    torch.testing.assert_close(out.masks.sum(-1), torch.ones(2, N))
    per_slot = decoder.mlp(decoder.slot_proj(slots).unsqueeze(2) + decoder.pos_embed.unsqueeze(1))
    expected = (per_slot[..., :D] * out.masks.transpose(1, 2).unsqueeze(-1)).sum(1)
    torch.testing.assert_close(out.reconstruction, expected)


def test_non_square_grid_is_refused():
    with pytest.raises(ValueError, match="square"):
        AutoregressiveDecoder(D, S, num_patches=12)
