"""One configuration object for SPOT: model, data and training hyper-parameters.

Field names follow the command-line names of the authors' scripts (``num_slots``,
``slot_size``, ``truncate``, ``init_method``, ...), so a reader can put the paper's
appendix, the authors' commands and this dataclass side by side. Defaults are the COCO
configuration of the paper (its sections 3-4 and the implementation details of its appendix).
``PRESETS`` holds the others: VOC as in the paper, MOVi-C/E as in the authors' released commands.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

from .errors import ConfigError

ORDER_MODES = ("standard", "random", "all")
TRUNCATIONS = ("bi-level", "fixed-point", "none")
INIT_METHODS = ("shared_gaussian", "embedding")
DECODER_TYPES = ("transformer", "mlp")
# Stage-2 distillation targets: the teacher's decoder masks in the orders it was trained with
# (the paper: one random order per batch), averaged over all nine orders, or in raster order.
TEACHER_TARGETS = ("trained-orders", "all-orders", "raster")
NUM_ORDERS = 9

# 'standard' | 'random' | 'all' or an explicit list of order ids (0..8).
OrderSpec = Union[str, Sequence[int]]


@dataclass
class SPOTConfig:
    """Every hyper-parameter of SPOT, with the paper's COCO values as defaults."""

    # --- encoder: frozen or partly fine-tuned ViT (paper, section 3) ---
    which_encoder: str = "vit_base_patch16_224.dino"  # any timm ViT name
    image_size: int = 224
    encoder_final_norm: bool = False  # DINOSAUR convention: no final LayerNorm
    finetune_blocks_after: int = 100  # blocks with index >= this are trained (100 = frozen)

    # --- slot attention (paper, section 3) ---
    num_slots: int = 7
    slot_size: int = 256
    mlp_hidden_size: int = 1024
    num_iterations: int = 3
    slot_att_heads: int = 1
    init_method: str = "shared_gaussian"
    truncate: str = "none"

    # --- autoregressive decoder and its patch orders (paper, section 3.2) ---
    dec_type: str = "transformer"
    num_dec_blocks: int = 4
    num_heads: int = 6
    mlp_dec_hidden: int = 2048
    # [BOS] tokens of the autoregressive decoder: 9 (one per patch order) or 1 for a raster-only
    # model (trained with train_permutations='standard'), which can decode order 0 only.
    # Part of the weights' shape. The MLP decoder has none and decodes raster order: always 1.
    num_bos_tokens: int = NUM_ORDERS
    train_permutations: OrderSpec = "random"
    eval_permutations: OrderSpec = "standard"
    attention_impl: str = "sdpa"  # 'math': explicit softmax (reference); 'sdpa': fused kernels

    # --- training, both stages (paper, section 4 and the appendix) ---
    dataset: str = "coco"
    batch_size: int = 64
    epochs: int = 50
    lr_main: float = 4e-4
    lr_min: float = 4e-7
    lr_warmup_steps: int = 10_000
    clip: float = 0.3  # gradient clipping in the infinity norm
    ce_weight: float = 5e-3  # stage 2 distillation weight
    cosine_ce_weight: bool = False
    teacher_targets: str = "trained-orders"  # 'all-orders' / 'raster': beyond the paper (self_training)
    num_workers: int = 4
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations
    # run length and bookkeeping (not in the paper; see spot_tutorial.train)
    max_steps: int = 0          # > 0: train (and schedule) this many steps instead of `epochs`
    max_minutes: float = 0.0    # > 0: wall-clock budget of training; the schedule is fit to it
    checkpoint_every: int = 500  # steps between resumable checkpoints (also at each epoch end)
    log_every: int = 20         # steps between log records
    bf16: bool = True           # bf16 autocast on CUDA (the authors trained in fp32)
    cpu_bf16: bool = False      # bf16 autocast for training on the CPU too (fast with AVX512-BF16 / AMX)
    torch_compile: bool = False  # torch.compile the model's blocks for training (SPOT.compile_modules)
    train_images: int = 0       # > 0: train on the first N images (synthetic: generate N; 0 = 10000)
    eval_images: int = 0        # > 0: evaluate on the first N images (synthetic: 0 = 256)
    selection_images: int = 0   # > 0: hold out the last N training images to choose best.pt on
    gt_mask_size: int = 320
    center_crop: bool = True  # False: resize to image_size without cropping (MOVi)
    random_crop: bool = False  # VOC training uses a random 224 crop

    # --- tutorial-scale options (not in the paper) ---
    pos_embed_scale: float = 1.0  # see encoders.build_encoder for the tiny encoder

    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dec_type == "mlp":
            self.num_bos_tokens = 1  # the MLP decoder has no [BOS] and no patch orders
        self.validate()

    # ------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ConfigError`` (a ``ValueError``) naming the field, its value and what is allowed."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"SPOTConfig: {message}")

        for name in ("num_slots", "slot_size", "mlp_hidden_size", "num_iterations",
                     "num_heads", "slot_att_heads", "image_size", "batch_size", "mlp_dec_hidden"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
        need(self.num_dec_blocks >= 1, f"num_dec_blocks must be >= 1, got {self.num_dec_blocks}")
        need(self.truncate in TRUNCATIONS, f"truncate={self.truncate!r}; choose one of {TRUNCATIONS}")
        need(self.init_method in INIT_METHODS, f"init_method={self.init_method!r}; choose one of {INIT_METHODS}")
        need(self.dec_type in DECODER_TYPES, f"dec_type={self.dec_type!r}; choose one of {DECODER_TYPES}")
        need(self.attention_impl in ("math", "sdpa"),
             f"attention_impl={self.attention_impl!r}; choose 'math' or 'sdpa'")
        need(self.slot_size % self.slot_att_heads == 0,
             f"slot_size ({self.slot_size}) must be divisible by slot_att_heads ({self.slot_att_heads})")
        for name in ("train_permutations", "eval_permutations"):
            check_order_spec(getattr(self, name), name)
        if self.dec_type == "mlp":
            for name in ("train_permutations", "eval_permutations"):
                need(getattr(self, name) == "standard",
                     f"the MLP decoder has no patch orders: set {name}='standard' (got {getattr(self, name)!r})")
        self._validate_bos_tokens(need)
        need(self.lr_main > 0 and self.lr_min >= 0, "learning rates must be positive")
        need(self.clip > 0, f"clip must be > 0, got {self.clip}")
        need(self.ce_weight >= 0, f"ce_weight must be >= 0, got {self.ce_weight}")
        need(self.teacher_targets in TEACHER_TARGETS,
             f"teacher_targets={self.teacher_targets!r}; choose one of {TEACHER_TARGETS}")
        for name in ("epochs", "lr_warmup_steps", "max_steps", "checkpoint_every", "train_images",
                     "eval_images", "selection_images", "num_workers", "seed"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        for name in ("eval_every", "log_every"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be a positive integer, got {value!r}")
        need(self.max_minutes >= 0, f"max_minutes must be >= 0 (0 = no time budget), got {self.max_minutes}")

    def _validate_bos_tokens(self, need) -> None:
        """9 [BOS] tokens (one per order), or 1: a raster-only model that decodes order 0 only."""
        need(self.num_bos_tokens in (1, NUM_ORDERS),
             f"num_bos_tokens must be {NUM_ORDERS} (one [BOS] per patch order) or 1 (a raster-only model), "
             f"got {self.num_bos_tokens!r}")
        if self.num_bos_tokens == 1 and self.dec_type == "transformer":
            for name in ("train_permutations", "eval_permutations"):
                need(getattr(self, name) in ("standard", [0], (0,)),
                     f"a model with 1 [BOS] token decodes raster order only: set {name}='standard' "
                     f"(got {getattr(self, name)!r}), or num_bos_tokens={NUM_ORDERS} for all patch orders")

    # ------------------------------------------------------------------
    def replace(self, **changes: Any) -> "SPOTConfig":
        """A validated copy with some fields changed; unknown names raise."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"SPOTConfig has no field(s) {unknown}; see SPOTConfig's fields for the valid names")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for name in ("train_permutations", "eval_permutations"):
            if not isinstance(data[name], str):
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SPOTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"SPOTConfig.from_dict: unknown field(s) {unknown}; was the file written by "
                              "a newer spot-tutorial?")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def num_orders(self) -> int:
        """Patch orders the model can decode (its [BOS] tokens; 1 for the MLP decoder)."""
        return self.num_bos_tokens


def check_order_spec(spec: OrderSpec, name: str = "permutations") -> None:
    """Check a patch-order choice: a mode name or a non-empty list of order ids 0..8."""
    if isinstance(spec, str):
        if spec not in ORDER_MODES:
            raise ConfigError(f"{name}={spec!r}; choose one of {ORDER_MODES} or a list of order ids 0..8")
        return
    ids = list(spec)
    if not ids or not all(isinstance(i, int) and 0 <= i < NUM_ORDERS for i in ids):
        raise ConfigError(f"{name}={spec!r}: an explicit order list must hold order ids between 0 and 8")


# ----------------------------------------------------------------------------
# Presets. `coco` is the default; the others change only what the paper changes.
# `movi_c` / `movi_e` follow the authors' released MOVi commands (their repository's README):
# 11 / 24 slots, 65 epochs with lr 2e-4 -> 4e-5, 128-px ground truth, frames not cropped.
# `tiny` is the CPU tutorial model (64 px images, depth-0 ViT, see issue notes).
PRESETS: dict[str, dict[str, Any]] = {
    "coco": {},
    "voc": dict(dataset="voc", num_slots=6, epochs=560, center_crop=True, random_crop=True),
    "movi_c": dict(dataset="movi_c", num_slots=11, epochs=65, lr_main=2e-4, lr_min=4e-5,
                   gt_mask_size=128, center_crop=False),
    "movi_e": dict(dataset="movi_e", num_slots=24, epochs=65, lr_main=2e-4, lr_min=4e-5,
                   gt_mask_size=128, center_crop=False),
    "tiny": dict(which_encoder="tiny", dataset="synthetic", image_size=64, num_slots=5, slot_size=64,
                 mlp_hidden_size=128, num_dec_blocks=2, num_heads=4, mlp_dec_hidden=256,
                 batch_size=32, epochs=1, lr_warmup_steps=30, lr_min=4e-6, gt_mask_size=64,
                 num_workers=0, pos_embed_scale=0.5),
}
PRESETS["synthetic"] = PRESETS["tiny"]

# Stage-2 (student) schedule where it differs from stage 1, per dataset; applied on top of the
# teacher's configuration by `spot_tutorial.train.student_config`. MOVi, as in the authors'
# stage-2 MOVi command: 30 epochs, lr 2e-4 -> 1.5e-4. COCO and VOC keep their stage-1 schedule.
STAGE2_SETTINGS: dict[str, dict[str, Any]] = {
    "movi_c": dict(epochs=30, lr_main=2e-4, lr_min=1.5e-4),
    "movi_e": dict(epochs=30, lr_main=2e-4, lr_min=1.5e-4),
}


def get_preset(name: str, **overrides: Any) -> SPOTConfig:
    """The named preset as a `SPOTConfig`, with optional field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SPOTConfig(**{**PRESETS[name], **overrides})
