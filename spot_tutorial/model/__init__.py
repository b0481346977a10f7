"""The network of SPOT (paper, section 3 and Fig. 2), one module per part of the paper.

    encoder          the frozen (or partly fine-tuned) ViT from timm, and the tiny CPU encoder
    slot_attention   slot attention with its initialisations and gradient truncation
    permutations     the nine patch orders of the autoregressive decoder
    decoders         the autoregressive transformer decoder and the DINOSAUR MLP decoder
    spot             the SPOT module that joins them
    outputs          the typed output of a forward pass

May import: `spot_tutorial.config`, `spot_tutorial.errors`, torch and timm. Nothing here knows
about data, optimisers, checkpoints files or training.
"""

from spot_tutorial.model.decoders import AutoregressiveDecoder, MLPDecoder
from spot_tutorial.model.encoder import ViTEncoder, build_encoder
from spot_tutorial.model.outputs import SPOTOutput
from spot_tutorial.model.permutations import patch_orders
from spot_tutorial.model.slot_attention import SlotAttention, SlotAttentionEncoder
from spot_tutorial.model.spot import SPOT

__all__ = ["SPOT", "SPOTOutput", "ViTEncoder", "build_encoder", "SlotAttention", "SlotAttentionEncoder",
           "AutoregressiveDecoder", "MLPDecoder", "patch_orders"]
