"""One configuration object for SPOT: model, data and training hyper-parameters.

Field names follow the command-line names of the authors' scripts (``num_slots``,
``slot_size``, ``truncate``, ``init_method``, ...), so a reader can put the paper's
appendix, the authors' commands and this dataclass side by side. Defaults are the COCO
configuration of the paper (its sections 3-4 and the implementation details of its appendix).
``PRESETS`` holds the others: VOC as in the paper, MOVi-C/E as in the authors' released commands.

The fields fall in three groups:

* the model's **architecture** (`Architecture`, `SPOTConfig.architecture`): what building the
  network needs. It is stored with the weights in every checkpoint and is enough to rebuild the
  model (`SPOTConfig.from_architecture`);
* the **runtime** settings (`RUNTIME_FIELDS`): how long and how a run goes (run length, logging,
  data-loading processes, compilation), not what it computes; they may change when a run is resumed;
* the **training** settings: everything else (data, optimiser, schedules, patch orders, precision,
  seed): the math of a run; resuming with other values is refused.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from spot_tutorial.errors import ConfigError
from spot_tutorial.orders import NUM_ORDERS, ORDER_MODES, OrderSpec, check_order_spec  # noqa: F401

TRUNCATIONS = ("bi-level", "fixed-point", "none")
INIT_METHODS = ("shared_gaussian", "embedding")
DECODER_TYPES = ("transformer", "mlp")
# Stage-2 distillation targets: the teacher's decoder masks in the orders it was trained with
# (the paper: one random order per batch), averaged over all nine orders, or in raster order.
TEACHER_TARGETS = ("trained-orders", "all-orders", "raster")
# How training reads its JPEGs (spot_tutorial.data.decode): PIL (the authors' path), PIL decoding at
# a reduced size, torchvision's decoder in the data-loading processes, or the training device
# decoding whole batches (nvJPEG on CUDA). Evaluation always reads with PIL.
DECODERS = ("pil", "pil-draft", "torchvision", "gpu")

# finetune_blocks_after at this value trains no ViT block (every timm ViT here has 12 or 24
# blocks): the frozen encoder of stage 1 and of the target copy in stage 2.
FROZEN_ENCODER = 100
# A count of epochs or steps that no run reaches: 'no limit' for epochs when max_minutes decides
# the run length, 'never' for eval_every.
NO_LIMIT = 10**6

# The most slots a model may have: `spot segment` writes label maps as 8-bit palette PNGs, whose
# pixels hold slot ids 0..254 (the paper uses 6 to 24 slots).
MAX_SLOTS = 255

# How long and how a run goes, not what it computes: these may change when a run is resumed.
# Fields renamed since checkpoints were first written: old name -> new name. Files and
# command lines that use the old names still work (the authors' scripts say "permutations").
RENAMED_FIELDS = {"train_permutations": "train_orders", "eval_permutations": "eval_orders"}

RUNTIME_FIELDS = ("num_workers", "decode", "log_every", "checkpoint_every", "eval_every", "max_minutes",
                  "epochs", "max_steps", "torch_compile", "cpu_bf16")


@dataclass(frozen=True)
class Architecture:
    """The model's architecture: what building the network needs (see `SPOTConfig` for each field).

    Every checkpoint stores it next to the weights, so a checkpoint rebuilds its model with no
    preset and no guessing: ``SPOT.from_config(SPOTConfig.from_architecture(architecture))``.
    """

    which_encoder: str            # encoder
    image_size: int
    encoder_final_norm: bool
    finetune_blocks_after: int
    pos_embed_scale: float
    num_slots: int                # slot attention
    slot_size: int
    mlp_hidden_size: int
    num_iterations: int
    slot_att_heads: int
    init_method: str
    truncate: str
    dec_type: str                 # decoder
    num_dec_blocks: int
    num_heads: int
    mlp_dec_hidden: int
    num_bos_tokens: int           # 9: one [BOS] per patch order; 1: a raster-only model

    @property
    def num_orders(self) -> int:
        """Patch orders the model can decode (its [BOS] tokens; 1 for the MLP decoder)."""
        return self.num_bos_tokens

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


ARCHITECTURE_FIELDS = tuple(f.name for f in dataclasses.fields(Architecture))


@dataclass
class SPOTConfig:
    """Every hyper-parameter of SPOT, with the paper's COCO values as defaults."""

    # --- encoder: frozen or partly fine-tuned ViT (paper, section 3) ---
    #: timm name of the ViT (DINO ViT-B/16 in the paper; DINOv2, MAE, ... work too), or
    #: 'tiny' for the CPU tutorials.
    which_encoder: str = "vit_base_patch16_224.dino"
    #: Side of the square input image in pixels (224 — a 14 x 14 token grid with patch 16).
    image_size: int = 224
    #: Apply the ViT's final LayerNorm to the features (DINOSAUR and SPOT do not).
    encoder_final_norm: bool = False
    #: ViT blocks with index >= this are trained (stage 2 — 8 of 12); FROZEN_ENCODER keeps it frozen.
    finetune_blocks_after: int = FROZEN_ENCODER

    # --- slot attention (paper, section 3) ---
    #: K, the number of slots (COCO 7, VOC 6, MOVi-C 11, MOVi-E 24).
    num_slots: int = 7
    #: S, the width of a slot vector.
    slot_size: int = 256
    #: Hidden width of the residual MLP that follows the GRU in every slot-attention iteration.
    mlp_hidden_size: int = 1024
    #: Slot-attention iterations (3 in the paper).
    num_iterations: int = 3
    #: Attention heads of slot attention (1 in the paper); the softmax runs over heads x slots.
    slot_att_heads: int = 1
    #: Initial slots — 'shared_gaussian' (stage 1 — learned mean and scale, fresh noise each
    #: pass) or 'embedding' (stage 2 — one learned vector per slot).
    init_method: str = "shared_gaussian"
    #: Gradient truncation before the last iteration — 'none' (stage 1), 'bi-level' (stage 2)
    #: or 'fixed-point'.
    truncate: str = "none"

    # --- autoregressive decoder and its patch orders (paper, section 3.2) ---
    #: 'transformer' — SPOT's autoregressive decoder; 'mlp' — the DINOSAUR baseline.
    dec_type: str = "transformer"
    #: Blocks of the autoregressive transformer decoder (4 in the paper).
    num_dec_blocks: int = 4
    #: Attention heads of the decoder (6 in the paper).
    num_heads: int = 6
    #: Hidden width of the MLP decoder (DINOSAUR baseline only).
    mlp_dec_hidden: int = 2048
    #: [BOS] tokens of the autoregressive decoder — 9 (one per patch order) or 1 for a raster-only
    #: model (trained with train_orders='standard'), which can decode order 0 only. Part of
    #: the weights' shape. The MLP decoder has none and decodes raster order — always 1.
    num_bos_tokens: int = NUM_ORDERS
    #: Patch orders in training — 'random' (one of the nine per batch, the paper), 'standard'
    #: (raster only), 'all', or a list of order ids.
    train_orders: OrderSpec = "random"
    #: Patch orders when the model is evaluated — 'standard' during training, 'all' (nine
    #: averaged) for the paper's final numbers.
    eval_orders: OrderSpec = "standard"
    #: 'sdpa' (fused kernels, the default) or 'math' (explicit softmax, the readable
    #: reference); the two agree to float precision.
    attention_impl: str = "sdpa"

    # --- training, both stages (paper, section 4 and the appendix) ---
    #: 'coco', 'voc', 'movi_c', 'movi_e' or 'synthetic' (the built-in CPU scenes).
    dataset: str = "coco"
    #: Images per optimisation step (per process with several GPUs).
    batch_size: int = 64
    #: Passes over the training images (COCO 50, VOC 560).
    epochs: int = 50
    #: Peak learning rate of Adam, reached after the warm-up.
    lr_main: float = 4e-4
    #: Learning rate at the end of the cosine decay.
    lr_min: float = 4e-7
    #: Steps of the linear warm-up from 0 to lr_main.
    lr_warmup_steps: int = 10_000
    #: Gradient clipping — the largest absolute gradient entry (infinity norm).
    clip: float = 0.3
    #: w, the weight of the stage-2 distillation cross-entropy (0.005 in the paper).
    ce_weight: float = 5e-3
    #: Decay w to 0 with a cosine over the run instead of keeping it constant.
    cosine_ce_weight: bool = False
    #: Stage-2 targets — the teacher's decoder masks in the orders it was trained with
    #: ('trained-orders', the paper), averaged over all nine orders ('all-orders') or in
    #: raster order ('raster'); the last two go beyond the paper.
    teacher_targets: str = "trained-orders"
    #: Data-loading processes, at most one per available CPU core (`runtime.data_workers`).
    num_workers: int = 4
    #: How training images are decoded and augmented — 'pil' (the authors' path), 'pil-draft'
    #: (PIL decodes the JPEG at a reduced size first), 'torchvision' (its decoder and tensor ops
    #: in the data-loading processes) or 'gpu' (the processes read the files; the training
    #: device decodes each batch, with nvJPEG on CUDA). Same crops and flips; evaluation uses PIL.
    decode: str = "pil"
    #: Seed of the weights, the data order, the patch orders and the slot noise.
    seed: int = 0
    #: Epochs between evaluations during training (a learning curve; nothing is chosen by it).
    eval_every: int = 1
    # run length and bookkeeping (not in the paper; see spot_tutorial.training.loop)
    #: > 0 — train (and fit the schedule to) this many steps instead of `epochs`.
    max_steps: int = 0
    #: > 0 — a wall-clock budget for training; the cosine schedule is fit to the steps that
    #: fit in it.
    max_minutes: float = 0.0
    #: Steps between resumable checkpoints (last.pt is also written at every epoch end).
    checkpoint_every: int = 500
    #: Steps between training log records (JSONL, CSV, TensorBoard).
    log_every: int = 20
    #: bf16 autocast for training on CUDA (the authors trained in fp32).
    bf16: bool = True
    #: bf16 autocast for training on the CPU too (fast only with AVX512-BF16 or AMX).
    cpu_bf16: bool = False
    #: torch.compile the ViT blocks, slot attention and decoder for training.
    torch_compile: bool = False
    #: Compute the frozen encoder's features of the training images once, before training
    #: (spot_tutorial.training.feature_cache): the built-in scenes only (no augmentation).
    cache_features: bool = False
    #: The built-in scenes' difficulty for dataset='synthetic', one of 'shapes', 'textured',
    #: 'occluded' or 'camouflage' (see spot_tutorial.data.synthetic).
    synthetic_difficulty: str = "shapes"
    #: > 0 — train on the first N images (synthetic — generate N; 0 means 10000).
    train_images: int = 0
    #: > 0 — evaluate on the first N images (synthetic — 0 means 256).
    eval_images: int = 0
    #: > 0 — hold out the last N training images and write best.pt by their score (model
    #: selection); 0 — none, the reported model is last.pt.
    selection_images: int = 0
    #: Side of the ground-truth masks in evaluation (320 for COCO / VOC, 128 for MOVi).
    gt_mask_size: int = 320
    #: Resize the shorter side and centre crop (COCO, VOC); False resizes to a square (MOVi).
    center_crop: bool = True
    #: Random crops in training (VOC).
    random_crop: bool = False

    # --- tutorial-scale options (not in the paper) ---
    #: Scale of the tiny CPU encoder's fixed sin-cos position code (tutorial models only).
    pos_embed_scale: float = 1.0

    #: Free-form notes stored with the configuration (not used by the library).
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
        need(self.num_slots <= MAX_SLOTS,
             f"num_slots={self.num_slots} is more than {MAX_SLOTS}: label maps are 8-bit PNGs of slot "
             f"ids, and the paper uses 6 to 24 slots; choose num_slots <= {MAX_SLOTS}")
        need(self.num_dec_blocks >= 1, f"num_dec_blocks must be >= 1, got {self.num_dec_blocks}")
        need(self.truncate in TRUNCATIONS, f"truncate={self.truncate!r}; choose one of {TRUNCATIONS}")
        need(self.init_method in INIT_METHODS,
             f"init_method={self.init_method!r}; choose one of {INIT_METHODS}")
        need(self.dec_type in DECODER_TYPES, f"dec_type={self.dec_type!r}; choose one of {DECODER_TYPES}")
        need(self.attention_impl in ("math", "sdpa"),
             f"attention_impl={self.attention_impl!r}; choose 'math' or 'sdpa'")
        need(self.slot_size % self.slot_att_heads == 0,
             f"slot_size ({self.slot_size}) must be divisible by slot_att_heads ({self.slot_att_heads})")
        for name in ("train_orders", "eval_orders"):
            check_order_spec(getattr(self, name), name)
        if self.dec_type == "mlp":
            for name in ("train_orders", "eval_orders"):
                need(getattr(self, name) == "standard",
                     f"the MLP decoder has no patch orders: set {name}='standard' (got "
                     f"{getattr(self, name)!r})")
        self._validate_bos_tokens(need)
        need(self.lr_main > 0 and self.lr_min >= 0, "learning rates must be positive")
        need(self.clip > 0, f"clip must be > 0, got {self.clip}")
        need(self.ce_weight >= 0, f"ce_weight must be >= 0, got {self.ce_weight}")
        need(self.decode in DECODERS, f"decode={self.decode!r}; choose one of {DECODERS}")
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
            for name in ("train_orders", "eval_orders"):
                need(getattr(self, name) in ("standard", [0], (0,)),
                     f"a model with 1 [BOS] token decodes raster order only: set {name}='standard' "
                     f"(got {getattr(self, name)!r}), or num_bos_tokens={NUM_ORDERS} for all patch orders")

    # ------------------------------------------------------------------
    def replace(self, **changes: Any) -> "SPOTConfig":
        """A validated copy with some fields changed; unknown names raise."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"SPOTConfig has no field(s) {unknown}; see SPOTConfig's fields for the valid "
                              f"names")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for name in ("train_orders", "eval_orders"):
            if not isinstance(data[name], str):
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SPOTConfig":
        data = {RENAMED_FIELDS.get(key, key): value for key, value in data.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"SPOTConfig.from_dict: unknown field(s) {unknown}; was the file written by "
                              "a newer spot-tutorial?")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def architecture(self) -> Architecture:
        """The model's architecture, the fields that building the network needs."""
        return Architecture(**{name: getattr(self, name) for name in ARCHITECTURE_FIELDS})

    def settings(self) -> dict:
        """The training and runtime settings: every field but the architecture's."""
        return {k: v for k, v in self.to_dict().items() if k not in ARCHITECTURE_FIELDS}

    @classmethod
    def from_architecture(cls, architecture: Architecture | dict, **settings: Any) -> "SPOTConfig":
        """A configuration for `architecture`, with training / runtime `settings` (defaults otherwise).

        Without settings, a model with one [BOS] token (raster only) or an MLP decoder gets the
        raster order ('standard') for training and evaluation, the only order it can decode.
        """
        shape = architecture.to_dict() if isinstance(architecture, Architecture) else dict(architecture)
        unknown = sorted(set(shape) - set(ARCHITECTURE_FIELDS))
        if unknown:
            raise ConfigError(f"unknown architecture field(s) {unknown}; was the file written by a newer "
                              "spot-tutorial?")
        if shape.get("num_bos_tokens") == 1 or shape.get("dec_type") == "mlp":
            settings.setdefault("train_orders", "standard")
            settings.setdefault("eval_orders", "standard")
        return cls.from_dict({**settings, **shape})

    @property
    def num_orders(self) -> int:
        """Patch orders the model can decode (`Architecture.num_orders`)."""
        return self.architecture.num_orders

