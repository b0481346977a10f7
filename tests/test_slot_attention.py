import pytest
import torch

from spot_tutorial.model.slot_attention import SlotAttention, SlotAttentionEncoder


def make_encoder(init="embedding", truncate="none", heads=1, iterations=3):
    return SlotAttentionEncoder(input_size=16, num_slots=4, slot_size=8, mlp_hidden_size=32,
                                num_iterations=iterations, num_heads=heads, truncate=truncate,
                                init_method=init)


@pytest.mark.parametrize("init", ["shared_gaussian", "embedding"])
@pytest.mark.parametrize("heads", [1, 2])
def test_shapes_and_masks_sum_to_one(init, heads):
    encoder = make_encoder(init, heads=heads)
    out = encoder(torch.randn(3, 25, 16))
    assert out.slots.shape == (3, 4, 8)
    assert out.slot_masks.shape == (3, 25, 4)
    assert out.slot_logits.shape == (3, heads, 25, 4)
    torch.testing.assert_close(out.slot_masks.sum(-1), torch.ones(3, 25))
    # masks are the joint softmax over heads x slots of the logits, summed over heads
    joint = out.slot_logits.transpose(1, 2).reshape(3, 25, -1).softmax(-1).view(3, 25, heads, 4).sum(2)
    torch.testing.assert_close(out.slot_masks, joint)


def test_gaussian_init_draws_new_noise_even_in_eval_mode_and_embedding_is_deterministic():
    gaussian = make_encoder("shared_gaussian").eval()
    x = torch.randn(2, 9, 16)
    assert not torch.allclose(gaussian(x).slots, gaussian(x).slots)
    embedding = make_encoder("embedding").eval()
    torch.testing.assert_close(embedding(x).slots, embedding(x).slots)
    torch.testing.assert_close(embedding(x).init_slots[0], embedding.slots_init.weight)


def test_initial_parameters_follow_the_paper():
    encoder = make_encoder("shared_gaussian")
    assert encoder.slot_mu.shape == encoder.slot_log_sigma.shape == (1, 1, 8)
    attention = encoder.slot_attention
    assert attention.project_q.bias is None and attention.project_k.bias is None
    assert torch.count_nonzero(attention.gru.bias_ih) == 0
    w_hh = attention.gru.weight_hh  # [3*8, 8] with orthonormal columns
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(8), atol=1e-5, rtol=0)


def last_iteration_gradient(encoder, features):
    """Gradient of a loss w.r.t. the slots entering the last iteration (computed by hand)."""
    attention = encoder.slot_attention
    inputs = encoder.mlp(encoder.layer_norm(features))
    init = encoder.initial_slots(features.shape[0], features)
    with torch.no_grad():
        attention.num_iterations -= 1
        slots = attention(inputs, init).slots
        attention.num_iterations += 1
    slots.requires_grad_(True)
    once = SlotAttention.__new__(SlotAttention)
    once.__dict__.update(attention.__dict__)
    once.num_iterations, once.truncate = 1, "none"
    once(inputs, slots).slots.pow(2).sum().backward()
    return slots.grad.sum(0)  # init is shared across the batch: sum over it


def test_truncation_semantics():
    torch.manual_seed(0)
    features = torch.randn(2, 9, 16)
    grads = {}
    for truncate in ("none", "fixed-point", "bi-level"):
        torch.manual_seed(1)
        encoder = make_encoder("embedding", truncate)
        encoder(features).slots.pow(2).sum().backward()
        grads[truncate] = encoder.slots_init.weight.grad
        if truncate == "bi-level":
            encoder.zero_grad()
            expected = last_iteration_gradient(encoder, features)
    # fixed-point: no gradient reaches the initialisation
    assert grads["fixed-point"] is None or torch.count_nonzero(grads["fixed-point"]) == 0
    # bi-level: the init receives exactly the gradient w.r.t. the last iteration's input slots
    torch.testing.assert_close(grads["bi-level"], expected)
    # none: back-propagation through all iterations gives a different, non-zero gradient
    assert torch.count_nonzero(grads["none"]) > 0
    assert not torch.allclose(grads["none"], grads["bi-level"])


def test_bi_level_keeps_the_forward_values():
    features = torch.randn(2, 9, 16)
    torch.manual_seed(3)
    none = make_encoder("embedding", "none")
    torch.manual_seed(3)
    bilevel = make_encoder("embedding", "bi-level")
    torch.testing.assert_close(none(features).slots, bilevel(features).slots)


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="truncate"):
        make_encoder(truncate="half")
    with pytest.raises(ValueError, match="init_method"):
        make_encoder(init="kmeans")
    with pytest.raises(ValueError, match="divisible"):
        make_encoder(heads=3)
