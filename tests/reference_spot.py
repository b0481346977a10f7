"""An independent, functional re-statement of SPOT's forward pass (paper, section 3),
written against the parameter NAMES of the authors' checkpoints. Tests compare the library's
modules with it. Single-head slot attention, embedding initialisation, one patch order.
"""

import torch
import torch.nn.functional as F


def layer_norm(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"])


def gru(x, h, sd, name):
    gates_x = x @ sd[f"{name}.weight_ih"].T + sd[f"{name}.bias_ih"]
    gates_h = h @ sd[f"{name}.weight_hh"].T + sd[f"{name}.bias_hh"]
    r_x, z_x, n_x = gates_x.chunk(3, -1)
    r_h, z_h, n_h = gates_h.chunk(3, -1)
    reset, update = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
    candidate = torch.tanh(n_x + reset * n_h)
    return (1 - update) * candidate + update * h


def attention(q_in, kv_in, sd, name, heads, causal):
    def split(x):
        return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)
    q = split(q_in @ sd[f"{name}.proj_q.weight"].T)
    k = split(kv_in @ sd[f"{name}.proj_k.weight"].T)
    v = split(kv_in @ sd[f"{name}.proj_v.weight"].T)
    logits = (q / q.shape[-1] ** 0.5) @ k.transpose(-1, -2)
    if causal:
        n = logits.shape[-1]
        logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    weights = logits.softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(q_in.shape)
    return out @ sd[f"{name}.proj_o.weight"].T, weights


def slot_attention(features, sd, iterations=3):
    p = "slot_attn"
    x = layer_norm(features, sd, f"{p}.layer_norm")
    x = F.relu(x @ sd[f"{p}.mlp.0.weight"].T + sd[f"{p}.mlp.0.bias"])
    x = x @ sd[f"{p}.mlp.2.weight"].T + sd[f"{p}.mlp.2.bias"]
    p = "slot_attn.slot_attention"
    inputs = layer_norm(x, sd, f"{p}.norm_inputs")
    slot_size = sd[f"{p}.project_q.weight"].shape[0]
    k = inputs @ sd[f"{p}.project_k.weight"].T * slot_size ** -0.5
    v = inputs @ sd[f"{p}.project_v.weight"].T
    slots = sd["slot_attn.slots_init.weight"].expand(features.shape[0], -1, -1)
    for _ in range(iterations):
        q = layer_norm(slots, sd, f"{p}.norm_slots") @ sd[f"{p}.project_q.weight"].T
        logits = k @ q.transpose(-1, -2)                     # [B, N, K]
        masks = logits.softmax(-1)
        weights = (masks + 1e-8) / (masks + 1e-8).sum(1, keepdim=True)
        slots = gru(weights.transpose(-1, -2) @ v, slots, sd, f"{p}.gru")
        hidden = F.relu(layer_norm(slots, sd,
                                   f"{p}.norm_mlp") @ sd[f"{p}.mlp.0.weight"].T + sd[f"{p}.mlp.0.bias"])
        slots = slots + hidden @ sd[f"{p}.mlp.2.weight"].T + sd[f"{p}.mlp.2.bias"]
    return slots, masks, logits


def decoder(slots, targets, sd, order, order_id, heads, num_blocks):
    bos = sd["bos_tokens"][order_id].expand(targets.shape[0], -1, -1)
    tokens = torch.cat([bos, targets[:, order][:, :-1]], 1) @ sd["input_proj.0.weight"].T
    tokens = layer_norm(tokens, sd, "input_proj.1")
    memory = layer_norm(slots @ sd["slot_proj.0.weight"].T, sd, "slot_proj.1")
    for b in range(num_blocks):
        p = f"dec.blocks.{b}"
        normed = layer_norm(tokens, sd, f"{p}.self_attn_layer_norm")
        residual = normed if b == 0 else tokens
        tokens = residual + attention(normed, normed, sd, f"{p}.self_attn", heads, causal=True)[0]
        out, cross = attention(layer_norm(tokens, sd, f"{p}.encoder_decoder_attn_layer_norm"), memory, sd,
                               f"{p}.encoder_decoder_attn", heads, causal=False)
        tokens = tokens + out
        hidden = F.relu(layer_norm(tokens, sd,
                                   f"{p}.ffn_layer_norm") @ sd[f"{p}.ffn.0.weight"].T + sd[f"{p}.ffn.0.bias"])
        tokens = tokens + hidden @ sd[f"{p}.ffn.2.weight"].T + sd[f"{p}.ffn.2.bias"]
    tokens = layer_norm(tokens, sd, "dec.layer_norm")
    masks = cross.sum(1)
    masks = masks / masks.sum(-1, keepdim=True)
    inverse = torch.argsort(order)
    return tokens[:, inverse], masks[:, inverse]
