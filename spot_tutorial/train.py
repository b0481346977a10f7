"""Training for both stages of SPOT (paper, section 4 "Implementation details" and appendix).

Stage 1 trains the *teacher*: slot attention + autoregressive decoder on a frozen ViT, each
batch decoded in a random patch order, loss = MSE of the reconstructed features.
Stage 2 trains a new *student* (learned slot embeddings, bi-level truncation, the last ViT
blocks fine-tuned) with loss = MSE + w * CE, where CE distils the frozen teacher's decoder
masks into the student's slot-attention masks (`spot_tutorial.self_training`).

The recipe of the paper, per optimisation step:
    lr(step)  = lr_main * step / warmup                                  for step < warmup
              = lr_min + (lr_main - lr_min) * (1 + cos(pi * t)) / 2,     t = (step - warmup) / (T - warmup)
    Adam step after clipping the gradient in the infinity norm (max |g| <= clip)
    stage 2:  w(step) = ce_weight   (or ce_weight * (1 + cos(pi * step / T)) / 2 with cosine_ce_weight)

Around it, what a real run needs: periodic evaluation of slot and decoder masks, TensorBoard +
JSONL + CSV logs, mask figures, the last checkpoint with config.json, mixed precision on CUDA
(bf16 autocast where the GPU has native bf16; fp16 autocast with gradient scaling on older GPUs
such as a T4 or V100; see `Trainer.precision`),
several GPUs with torchrun (DistributedDataParallel), and exact resumption: a run killed at any
moment and restarted with ``resume=True`` ends with the same weights as one never interrupted
(model, optimiser, step, RNG states and the position in the epoch's data order are restored).

Which checkpoint to report: the paper reports the *last* one, and so does this trainer (last.pt).
The periodic evaluation on the evaluation split (COCO val2017, VOC val) is a learning curve only;
nothing is chosen by it. Model selection (best.pt) happens only when asked for, on training
images held out from training (``selection_images``, see ``spot_tutorial.data.selection``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .data import build_datasets
from .data.selection import holdout_split
from .checkpoints import (FORMAT, FORMAT_VERSION, atomic_save, initialize_from, load_model, load_state_strict,
                          safe_load)
from .config import STAGE2_SETTINGS, SPOTConfig
from .model import SPOT
from .precision import autocast as precision_autocast, choose_precision
from .self_training import distillation_loss, teacher_target_orders
from .errors import ConfigError

# Stage 2 student, as in the paper: learned slot embeddings, bi-level truncation, ViT blocks
# with index >= 8 trained (the frozen target copy is built by SPOT.from_config).
STUDENT_SETTINGS = dict(init_method="embedding", truncate="bi-level", finetune_blocks_after=8)
# Fields that may change when a run is resumed: they do not change what is computed.
RESUMABLE_CHANGES = ("num_workers", "log_every", "checkpoint_every", "eval_every", "max_minutes",
                     "epochs", "max_steps", "torch_compile", "cpu_bf16")
FIGURE_IMAGES = 4  # evaluation images shown in the figures written at each evaluation
LAST, BEST = "last.pt", "best.pt"
RUN_FILES = (LAST, BEST, "config.json", "log.jsonl", "eval.csv", "summary.json", "tensorboard", "figures")


def check_selection(select_by: str | None, config: SPOTConfig) -> str | None:
    """The model-selection metric, or None: selection needs held-out training images."""
    if select_by is None and config.selection_images > 0:
        select_by = "decoder/mbo_i"
    if select_by is None:
        return None
    masks, _, metric = select_by.partition("/")
    if masks not in ("slot", "decoder") or metric not in ("fg_ari", "mbo_i", "mbo_c", "miou"):
        raise ConfigError(f"select_by={select_by!r}; use '<slot|decoder>/<fg_ari|mbo_i|mbo_c|miou>'")
    if config.selection_images <= 0:
        raise ConfigError(f"select_by={select_by!r} needs held-out training images to choose on: pass "
                         "selection_images=N (--selection-images N). Choosing on the evaluation split "
                         "would select on the numbers that are reported; the paper reports the last "
                         "checkpoint (last.pt).")
    return select_by


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient became NaN or infinite; training stopped."""


def student_config(config: SPOTConfig) -> SPOTConfig:
    """The stage-2 student's configuration for a stage-1 (teacher) configuration.

    The student settings above, plus the dataset's stage-2 schedule where it has its own
    (`spot_tutorial.config.STAGE2_SETTINGS`: MOVi trains 30 epochs with lr 2e-4 -> 1.5e-4).
    """
    return config.replace(**STUDENT_SETTINGS, **STAGE2_SETTINGS.get(config.dataset, {}))


# ----------------------------------------------------------------------------------------------
# schedules
def learning_rate(step: int, total_steps: float, config: SPOTConfig) -> float:
    """Linear warm-up from 0 over `lr_warmup_steps`, then cosine from lr_main to lr_min at `total_steps`."""
    warmup = config.lr_warmup_steps
    if step < warmup:
        return config.lr_main * step / warmup
    progress = min(1.0, (step - warmup) / max(1.0, total_steps - warmup))
    return config.lr_min + (config.lr_main - config.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ce_weight(step: int, total_steps: float, config: SPOTConfig) -> float:
    """Weight w of the distillation CE: constant, or cosine from ce_weight down to 0."""
    if not config.cosine_ce_weight:
        return config.ce_weight
    progress = min(1.0, step / max(1.0, total_steps))
    return config.ce_weight * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------
# devices, several processes
@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this process's GPU if there is one, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but PyTorch sees no GPU; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_finite(values: list[torch.Tensor], distributed: Distributed) -> bool:
    """True when every value is finite on every process (all processes then stop together)."""
    flag = torch.stack([torch.isfinite(v.detach().float()).all() for v in values]).all().float()
    if distributed.enabled:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


# ----------------------------------------------------------------------------------------------
# data
class EpochSampler(Sampler[int]):
    """Shuffled indices for one epoch, seeded by (seed, epoch), one shard per process.

    The epoch's order is a function of (seed, epoch) only, so a resumed run sees the same data
    in the same order; `set_epoch(epoch, start_batch)` skips the batches already trained on.
    Each process gets `steps_per_epoch * batch_size` indices (the tail that does not fill a
    batch on every process is dropped, as with drop_last=True).
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.steps_per_epoch = dataset_size // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise ConfigError(f"the training set has {dataset_size} images, fewer than one batch "
                             f"(batch_size {batch_size} x {world_size} process(es)); lower batch_size "
                             "or use more training images")
        self.dataset_size, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def epoch_indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.dataset_size, generator=generator)
        used = order[: self.steps_per_epoch * self.batch_size * self.world_size]
        return used[self.rank::self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_batch) * self.batch_size


class ShardSampler(Sampler[int]):
    """Evaluation: process r takes images r, r + P, r + 2P, ... (no padding, no duplicates)."""

    def __init__(self, dataset_size: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, dataset_size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# ----------------------------------------------------------------------------------------------
# models
def build_model(config: SPOTConfig, encoder_weights: str | None = None, pretrained: bool | None = None) -> SPOT:
    """SPOT from the config; pretrained encoder weights unless it is the CPU 'tiny' encoder."""
    if pretrained is None:
        pretrained = config.which_encoder != "tiny"
    return SPOT.from_config(config, pretrained=pretrained, weights_path=encoder_weights)


def load_teacher(path: str | os.PathLike, device: torch.device) -> SPOT:
    """A stage-1 checkpoint as a frozen teacher (eval mode, no gradients)."""
    teacher = load_model(path, map_location="cpu").to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def check_teacher(teacher: SPOT, config: SPOTConfig) -> None:
    """The student must see the same images, token grid and number of slots as its teacher."""
    differences = [f"{name}: teacher {getattr(teacher.config, name)!r}, student {getattr(config, name)!r}"
                   for name in ("num_slots", "image_size", "which_encoder", "encoder_final_norm")
                   if getattr(teacher.config, name) != getattr(config, name)]
    if differences:
        raise ConfigError("the teacher checkpoint does not fit the student configuration:\n  "
                         + "\n  ".join(differences) + "\nuse the same preset/overrides as in stage 1")


def copy_encoder_from_teacher(student: SPOT, teacher: SPOT) -> None:
    """Start the student from the teacher's (frozen, pretrained) encoder weights.

    In the paper both stages start from the same pretrained ViT; copying it from the teacher's
    checkpoint makes that exact (also for the randomly initialised 'tiny' encoder) and needs no
    download. The student's trainable encoder and its frozen target copy both get it.
    """
    source = teacher.target_encoder if teacher.target_encoder is not None else teacher.encoder
    weights = source.vit.state_dict()
    student.encoder.vit.load_state_dict(weights)
    if student.target_encoder is not None:
        student.target_encoder.vit.load_state_dict(weights)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# ----------------------------------------------------------------------------------------------
# random states (saved in checkpoints so a resumed run draws the same orders and noise)
def teacher_sees_student_targets(teacher: SPOT, student: SPOT) -> bool:
    """True when the teacher's encoder is the frozen ViT that makes the student's targets.

    Then the teacher's features equal the student's reconstruction targets (same weights,
    same images, eval mode), and stage 2 skips the teacher's encoder pass: same math.
    """
    target_source = student.target_encoder or (student.encoder if student.encoder.is_frozen else None)
    teacher_encoder = teacher.target_encoder or teacher.encoder
    if target_source is None or teacher_encoder.final_norm != target_source.final_norm:
        return False
    mine, theirs = teacher_encoder.vit.state_dict(), target_source.vit.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k].to(mine[k].device)) for k in mine)


def adam(parameters: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """The paper's Adam, with torch's fused kernel (one kernel for every parameter, the same
    update up to rounding) on CUDA and, since torch 2.4, on the CPU; plain Adam where torch has none."""
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch or an unsupported device
        return torch.optim.Adam(parameters, lr=lr)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def batch_loss(train_model: nn.Module, images: torch.Tensor, teacher: SPOT | None = None,
               weight: float = 0.0, teacher_on_targets: bool = False,
               targets: str = "trained-orders") -> tuple[torch.Tensor, dict]:
    """Stage 1: the reconstruction MSE. Stage 2: MSE + weight * distillation CE from the teacher.

    The teacher runs frozen, in eval mode, with its Gaussian slot noise. By default (the paper)
    it decodes in the patch orders it was trained with: one random order per batch for SPOT's
    teacher (a raster-only teacher never learned the other orders, so it decodes in raster
    order); `targets` picks other orders (see `self_training.teacher_target_orders`).
    """
    output = train_model(images)
    record = {"mse": output.loss.detach()}
    if teacher is None:
        return output.loss, record
    teacher_orders = teacher_target_orders(targets, teacher.config.train_permutations)
    with torch.inference_mode():
        if teacher_on_targets:  # its encoder would recompute output.target exactly
            teacher_output = teacher.forward_features(output.target, output.target, teacher_orders)
        else:
            teacher_output = teacher(images, permutations=teacher_orders)
    distill = distillation_loss(output.slot_logits, teacher_output.decoder_masks)
    record.update(ce=distill.loss.detach(), ce_weight=torch.tensor(weight))
    return output.loss + weight * distill.loss, record


def apply_gradients(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float,
                    check: Callable[[torch.Tensor], Any] | None = None,
                    scaler: "torch.amp.GradScaler | None" = None) -> torch.Tensor:
    """Backward, clip the gradients in the infinity norm (the paper's 0.3), optimiser step.

    With an enabled `scaler` (fp16 training) the loss is scaled before backward and the gradients
    are unscaled before clipping; a step whose gradients overflowed is skipped by the scaler (and
    its scale lowered) instead of being reported to `check`, which sees finite norms only.
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is None or not scaler.is_enabled():
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(model), clip, norm_type=float("inf"))
        if check is not None:
            check(grad_norm)
        optimizer.step()
        return grad_norm
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(model), clip, norm_type=float("inf"))
    if check is not None and torch.isfinite(grad_norm):
        check(grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return grad_norm


def capture_rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Python, numpy and torch random generators (torch seeds every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------
@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""
    step: int = 0               # optimisation steps done
    epoch: int = 0              # current epoch
    batch_in_epoch: int = 0     # batches of the current epoch already trained on
    total_steps: float = 0.0    # schedule length T (may be fit to a time budget)
    train_seconds: float = 0.0  # wall time spent in training steps so far
    best_score: float = -1.0    # best value of the selection metric so far
    best_step: int = -1
    last_eval_step: int = -1


@dataclass
class TrainResult:
    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Optional[Path]
    steps: int
    train_seconds: float
    images_per_second: float
    final_metrics: dict = field(default_factory=dict)  # {"slot": {...}, "decoder": {...}}
    best_metrics: dict = field(default_factory=dict)
    stopped_by: str = "steps"  # 'steps': planned steps done; 'time': the time budget decided


class Trainer:
    """One trainer for both stages. `fit()` runs (or resumes) training and returns a TrainResult.

    Args:
        config: the SPOTConfig (for stage 2, the *student's*: see `student_config`).
        stage: 1 (teacher) or 2 (self-training student; needs `teacher`).
        output_dir: checkpoints, config.json, logs, TensorBoard events and figures go here.
        teacher: path of a stage-1 checkpoint (last.pt of a stage-1 run, or its best.pt).
        data_path: dataset folder (not needed for the synthetic dataset).
        device: 'auto', 'cpu', 'cuda', 'cuda:1', ...
        resume: continue the run in `output_dir` from its last.pt (starts fresh if there is none).
        overwrite: allow starting a fresh run in a folder that already holds one.
        select_by: '<masks>/<metric>' deciding best.pt on the held-out training images
            (`config.selection_images` > 0; without them there is no model selection and no
            best.pt). Default 'decoder/mbo_i' (decoder masks are what the teacher hands to
            stage 2); 'slot/mbo_i' is the alternative for the student.
        on_checkpoint: called with the step after each resumable checkpoint is written.
        datasets: (train, eval) datasets to use instead of `build_datasets(config, data_path)`.
        mask_path: with ``config.dataset == 'folder'``, the folder of instance-mask PNGs that
            makes evaluation (and model selection) possible; without it there are figures only.
        init_from: a checkpoint (ours or the authors') whose weights start the model, for
            fine-tuning; see `checkpoints.initialize_from`. Ignored when resuming a run.
    """

    def __init__(self, config: SPOTConfig, stage: int = 1, output_dir: str | os.PathLike = "outputs/run",
                 teacher: str | os.PathLike | None = None, data_path: str | os.PathLike | None = None,
                 device: str = "auto", resume: bool = False, overwrite: bool = False,
                 progress: bool = True, encoder_weights: str | None = None,
                 select_by: str | None = None, on_checkpoint: Callable[[int], None] | None = None,
                 datasets: tuple[Dataset, Dataset] | None = None, mask_path: str | os.PathLike | None = None,
                 init_from: str | os.PathLike | None = None):
        if stage not in (1, 2):
            raise ConfigError(f"stage must be 1 (teacher) or 2 (self-training), got {stage!r}")
        if stage == 2 and teacher is None:
            raise ConfigError("stage 2 needs the stage-1 teacher checkpoint: pass teacher=PATH (--teacher)")
        if stage == 1 and teacher is not None:
            raise ConfigError("a teacher checkpoint is only used in stage 2; drop --teacher or use --stage 2")
        select_by = check_selection(select_by, config)
        if stage == 2 and config.init_method != "embedding":
            warnings.warn("stage 2 with init_method != 'embedding': the paper's student uses learned "
                          "slot embeddings (see spot_tutorial.train.student_config)", stacklevel=2)
        self.config, self.stage = config, stage
        self.output_dir = Path(output_dir)
        self.teacher_path = None if teacher is None else str(teacher)
        self.select_by, self.on_checkpoint, self.show_progress = select_by, on_checkpoint, progress

        self.device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        self.distributed = init_distributed(self.device)
        self.is_main = self.distributed.is_main
        seed_everything(config.seed)  # the same initial weights in every process
        self._check_output_dir(resume, overwrite)
        # data first: a missing dataset is reported before any weights are downloaded
        train_set, eval_set = datasets if datasets is not None else build_datasets(config, data_path, mask_path)
        self.selection_set = None  # held-out training images that choose best.pt
        if select_by is not None:
            train_set, self.selection_set = holdout_split(config, train_set, data_path, mask_path)
        self.train_set, self.eval_set = train_set, eval_set
        self.eval_has_masks = "instance_mask" in eval_set[0]  # an image folder may have no masks
        self.init_from = None if init_from is None else str(init_from)

        self.teacher = load_teacher(self.teacher_path, self.device) if stage == 2 else None
        if self.teacher is not None:
            check_teacher(self.teacher, config)
        self.model = build_model(config, encoder_weights,
                                 pretrained=False if stage == 2 or init_from is not None else None)
        if self.teacher is not None:
            copy_encoder_from_teacher(self.model, self.teacher)
        self.init_report = None  # fine-tuning: weights from another checkpoint (ours or the authors')
        if self.init_from is not None and not (resume and (self.output_dir / LAST).exists()):
            self.init_report = initialize_from(self.model, self.init_from)
            if self.is_main:
                print(f"[spot] {self.init_report.summary()}")
        self.teacher_on_targets = self.teacher is not None and teacher_sees_student_targets(self.teacher, self.model)
        self.model.to(self.device)
        if config.cpu_bf16 and self.device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn("cpu_bf16=True on a CPU without AVX512-BF16 or AMX: bf16 is emulated there and "
                          "training gets slower, not faster; drop --cpu-bf16", stacklevel=2)
        if config.torch_compile:  # same weights and checkpoints; faster steps after the first
            self.model.compile_modules()
        self.optimizer = adam(trainable_parameters(self.model), config.lr_main)
        # fp16 needs loss scaling; for bf16 and fp32 the scaler is disabled and does nothing
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.train_model: nn.Module = self.model
        if self.distributed.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

        self.sampler = EpochSampler(len(train_set), config.batch_size, config.seed,
                                    self.distributed.rank, self.distributed.world_size)
        self.progress = Progress(total_steps=self._planned_steps())
        seed_everything(config.seed + self.distributed.rank)  # own orders and noise per process
        if resume:
            self._resume()
        self.writer = None
        self._figure_batch: dict | None = None

    # -- setup -----------------------------------------------------------------------------
    def _planned_steps(self) -> int:
        if self.config.max_steps > 0:
            return self.config.max_steps
        return self.config.epochs * self.sampler.steps_per_epoch

    def _check_output_dir(self, resume: bool, overwrite: bool) -> None:
        if resume or not (self.output_dir / LAST).exists():
            return
        if not overwrite:
            raise FileExistsError(f"{self.output_dir} already holds a run ({LAST}); pass resume=True "
                                  "(--resume) to continue it, or choose another output folder")
        if self.is_main:  # a fresh run: remove the files of the previous one (and nothing else)
            for name in RUN_FILES:
                path = self.output_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        if self.distributed.enabled:
            dist.barrier()

    def _resume(self) -> None:
        path = self.output_dir / LAST
        if not path.exists():
            if self.is_main:
                print(f"[spot] no checkpoint at {path}; starting a new run")
            return
        payload = safe_load(path, map_location="cpu")
        saved = SPOTConfig.from_dict(payload["config"]).to_dict()
        ours = self.config.to_dict()
        changed = [f"{k}: checkpoint {saved[k]!r} vs now {ours[k]!r}" for k in ours
                   if saved[k] != ours[k] and k not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(f"cannot resume {path} with a different configuration:\n  " + "\n  ".join(changed)
                             + "\nresume with the same preset and overrides (see config.json there)")
        if payload.get("stage") != self.stage:
            raise ConfigError(f"{path} is a stage-{payload.get('stage')} run; resume it with --stage "
                             f"{payload.get('stage')}")
        load_state_strict(self.model, payload["model"], source=str(path))
        self.optimizer.load_state_dict(payload["optimizer"])
        self.progress = Progress(**payload["progress"])
        self.progress.total_steps = self._planned_steps()  # `epochs` / `max_steps` may have grown
        rng_states = payload["rng"]
        if len(rng_states) == self.distributed.world_size:
            restore_rng_state(rng_states[self.distributed.rank])
        elif self.is_main:
            print(f"[spot] {path} was written by {len(rng_states)} process(es), now {self.distributed.world_size}: "
                  "random states are re-seeded, so the run continues but not bit for bit")
        if self.is_main:
            print(f"[spot] resumed {path} at step {self.progress.step} (epoch {self.progress.epoch}, "
                  f"batch {self.progress.batch_in_epoch})")

    # -- data ----------------------------------------------------------------------------------
    def _train_loader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + self.progress.epoch * 31
                                                  + self.distributed.rank)  # worker seeds
        return DataLoader(self.train_set, batch_size=self.config.batch_size, sampler=self.sampler,
                          num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
                          drop_last=True, generator=generator,
                          persistent_workers=False)

    def eval_loader(self, dataset: Dataset | None = None) -> DataLoader:
        dataset = self.eval_set if dataset is None else dataset
        sampler = ShardSampler(len(dataset), self.distributed.rank, self.distributed.world_size)
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler,
                          num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda")

    # -- one step --------------------------------------------------------------------------------
    @property
    def precision(self) -> str:
        """The training step's precision: 'bf16', 'fp16' or 'fp32'.

        CUDA with `config.bf16`: bf16 autocast where the GPU has native bf16 (Ampere or newer),
        otherwise fp16 autocast with a `torch.amp.GradScaler` (a T4 or V100 has no bf16).
        CPU: bf16 autocast with `config.cpu_bf16`, otherwise fp32. Periodic evaluation runs in bf16
        only where the step does, and in fp32 otherwise.
        """
        if self.device.type == "cpu":
            return "bf16" if self.config.cpu_bf16 else "fp32"
        if self.device.type != "cuda":
            return "fp32"
        return choose_precision(self.device, want_bf16=self.config.bf16)

    def autocast(self):
        """The autocast context of `precision` (a no-op for fp32)."""
        return precision_autocast(self.device, self.precision)

    def train_step(self, images: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch of images [B, 3, H, W]; returns its log values."""
        step, total = self.progress.step, self.progress.total_steps
        lr = learning_rate(step, total, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        weight = ce_weight(step, total, self.config)
        with self.autocast():
            loss, record = batch_loss(self.train_model, images, self.teacher, weight, self.teacher_on_targets,
                                      self.config.teacher_targets)
        if not all_finite([loss], self.distributed):
            self._stop_non_finite("loss", loss)
        grad_norm = apply_gradients(self.model, self.optimizer, loss, self.config.clip,
                                    check=self._check_gradient, scaler=self.scaler)
        record.update(loss=loss.detach(), grad_norm=grad_norm.detach())
        return {"lr": lr, **{k: float(v) for k, v in record.items()}}

    def _check_gradient(self, grad_norm: torch.Tensor) -> None:
        if not all_finite([grad_norm], self.distributed):
            self._stop_non_finite("gradient (infinity norm)", grad_norm)

    def _stop_non_finite(self, what: str, value: torch.Tensor) -> None:
        last = self.output_dir / LAST
        kept = (f"the last good checkpoint is {last}" if last.exists()
                else "no checkpoint was written yet")
        raise NonFiniteLossError(
            f"the {what} is {float(value.detach().float())} at step {self.progress.step} "
            f"(epoch {self.progress.epoch}); training stopped and nothing was saved after it: {kept}. "
            "Lower lr_main (--lr-main) or clip (--clip), check the data, then resume with --resume "
            "or restart.")

    # -- evaluation, logs, checkpoints ------------------------------------------------------------
    def evaluate(self, dataset: Dataset | None = None) -> dict[str, dict[str, float]]:
        """Slot- and decoder-mask metrics on the evaluation set, or on `dataset` (stage-1 style:
        'standard' order).

        Runs in a forked random state with a fixed seed, so evaluating (or not) never changes
        the training run, and the numbers of a given model are reproducible.
        """
        from .evaluate import evaluate_model

        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed + 12345)
            return evaluate_model(self.model, self.eval_loader(dataset), self.device,
                                  permutations=self.config.eval_permutations,
                                  progress=self.show_progress and self.is_main,
                                  precision="bf16" if self.device.type == "cuda" and self.precision == "bf16" else "fp32")

    def _open_logs(self) -> None:
        if not self.is_main or self.writer is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.json").write_text(self.config.to_json() + "\n")
        self.writer = SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=self.progress.step)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.output_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if record.get("kind") == "train":
            for key, value in record.items():
                if key not in ("kind", "step", "epoch"):
                    self.writer.add_scalar(f"train/{key}", value, record["step"])

    def _log_evaluation(self, results: dict[str, dict[str, float]]) -> None:
        if not self.is_main:
            return
        step, epoch = self.progress.step, self.progress.epoch
        self._log({"kind": "eval", "step": step, "epoch": epoch, **results})
        csv_path = self.output_dir / "eval.csv"
        new_file = not csv_path.exists()
        with open(csv_path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(["step", "epoch", "masks", "fg_ari", "mbo_i", "mbo_c", "miou", "num_images"])
            for masks, metrics in results.items():
                writer.writerow([step, epoch, masks] + [metrics[k] for k in
                                                        ("fg_ari", "mbo_i", "mbo_c", "miou", "num_images")])
                for key in ("fg_ari", "mbo_i", "mbo_c", "miou"):
                    self.writer.add_scalar(f"eval_{masks}/{key}", metrics[key], step)
        self._save_figure()

    def _save_figure(self) -> None:
        """Masks of the first evaluation images at this step: figures/step_XXXXXXX.png."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .viz import mask_figure

        if self._figure_batch is None:
            items = [self.eval_set[i] for i in range(min(FIGURE_IMAGES, len(self.eval_set)))]
            self._figure_batch = {"image": torch.stack([item["image"] for item in items])}
            if "instance_mask" in items[0]:
                self._figure_batch["instance_mask"] = torch.stack([item["instance_mask"] for item in items])
        images = self._figure_batch["image"].to(self.device)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices), self.autocast():
            torch.manual_seed(0)
            was_training = self.model.training
            output = self.model.eval()(images, permutations=self.config.eval_permutations)
            self.model.train(was_training)
        masks = {"slot masks": output.slot_masks.float(), "decoder masks": output.decoder_masks.float()}
        if "instance_mask" in self._figure_batch:
            masks = {"ground truth": self._figure_batch["instance_mask"], **masks}
        figure = mask_figure(images.cpu(), masks)
        path = self.output_dir / "figures" / f"step_{self.progress.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=80)
        plt.close(figure)

    def _gather_rng_states(self) -> list[dict[str, Any]]:
        state = capture_rng_state()
        if not self.distributed.enabled:
            return [state]
        states: list[Any] = [None] * self.distributed.world_size
        dist.all_gather_object(states, state)
        return states

    def save_checkpoint(self) -> None:
        """last.pt: everything needed to continue exactly (written atomically; every process joins)."""
        rng_states = self._gather_rng_states()
        if self.is_main:
            payload = {"format": FORMAT, "version": FORMAT_VERSION, "stage": self.stage,
                       "config": self.config.to_dict(), "model": self.model.state_dict(),
                       "optimizer": self.optimizer.state_dict(), "progress": asdict(self.progress),
                       "rng": rng_states, "teacher": self.teacher_path, "init_from": self.init_from}
            atomic_save(payload, self.output_dir / LAST)
            if self.on_checkpoint is not None:
                self.on_checkpoint(self.progress.step)

    def _save_best(self) -> None:
        """Score the model on the held-out training images; best.pt keeps the best one so far."""
        if self.selection_set is None:
            return
        results = self.evaluate(self.selection_set)
        if self.is_main:
            self._log({"kind": "selection", "step": self.progress.step, "epoch": self.progress.epoch, **results})
            for masks_name, metrics in results.items():
                for key in ("fg_ari", "mbo_i", "mbo_c", "miou"):
                    self.writer.add_scalar(f"selection_{masks_name}/{key}", metrics[key], self.progress.step)
        masks, _, metric = self.select_by.partition("/")
        score = results[masks][metric]
        if math.isnan(score) or score <= self.progress.best_score:
            return
        self.progress.best_score, self.progress.best_step = score, self.progress.step
        if self.is_main:
            payload = {"format": FORMAT, "version": FORMAT_VERSION, "stage": self.stage,
                       "config": self.config.to_dict(), "model": self.model.state_dict(),
                       "step": self.progress.step, "metrics": results, "select_by": self.select_by,
                       "selected_on": f"{len(self.selection_set)} held-out training images"}
            atomic_save(payload, self.output_dir / BEST)

    def _evaluate_and_select(self) -> dict[str, dict[str, float]]:
        if not self.eval_has_masks:  # images without ground truth: figures, no metrics
            self.progress.last_eval_step = self.progress.step
            if self.is_main:
                self._save_figure()
            return {}
        results = self.evaluate()
        self.progress.last_eval_step = self.progress.step
        self._log_evaluation(results)
        self._save_best()
        return results

    # -- the loop ----------------------------------------------------------------------------------
    def _agree(self, value: float, op: "dist.ReduceOp") -> float:
        """The same decision in every process (clocks differ a little between processes)."""
        if not self.distributed.enabled:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64,
                              device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(tensor, op=op)
        return float(tensor.item())

    def _time_is_up(self, started: float, already: float) -> bool:
        budget = self.config.max_minutes * 60.0
        if budget <= 0:
            return False
        out_of_time = already + (time.perf_counter() - started) >= budget
        return bool(self._agree(out_of_time, dist.ReduceOp.MAX))  # any process out of time: all stop

    def _fit_schedule_to_budget(self, started: float, already: float) -> None:
        """With a time budget, T = the steps that fit in it at the speed so far.

        Re-estimated after every step: T = step * budget / elapsed, so the cosine reaches
        lr_min just when the time is up, whatever the speed of the machine (or of its other
        jobs). During warm-up T does not matter yet, so the first, slower steps do no harm.
        """
        if self.config.max_minutes <= 0 or self.config.max_steps > 0:
            return
        elapsed = self._agree(already + time.perf_counter() - started, dist.ReduceOp.MAX)
        projected = self.progress.step * self.config.max_minutes * 60.0 / max(elapsed, 1e-9)
        self.progress.total_steps = min(float(self._planned_steps()), projected)

    def fit(self) -> TrainResult:
        """Train until the planned steps are done or the time budget is spent."""
        config, progress = self.config, self.progress
        self._open_logs()
        self.model.train()
        already = progress.train_seconds
        started = time.perf_counter()
        steps_here, stopped_by, results = 0, "steps", {}
        bar = self._progress_bar()
        window_start, window_images = time.perf_counter(), 0
        while progress.step < progress.total_steps and stopped_by == "steps":
            self.sampler.set_epoch(progress.epoch, progress.batch_in_epoch)
            for batch in self._train_loader():
                images = batch["image"].to(self.device, non_blocking=True)
                values = self.train_step(images)
                progress.step += 1
                progress.batch_in_epoch += 1
                steps_here += 1
                window_images += images.shape[0] * self.distributed.world_size
                self._fit_schedule_to_budget(started, already)
                if progress.step % config.log_every == 0 or progress.step == 1:
                    now = time.perf_counter()
                    values["images_per_s"] = window_images / max(now - window_start, 1e-9)
                    window_start, window_images = now, 0
                    self._log({"kind": "train", "step": progress.step, "epoch": progress.epoch, **values})
                    self._update_bar(bar, values)
                if bar is not None:
                    bar.update(1)
                epoch_done = progress.batch_in_epoch == self.sampler.steps_per_epoch
                if epoch_done:
                    progress.epoch += 1
                    progress.batch_in_epoch = 0
                finished = progress.step >= progress.total_steps
                if self._time_is_up(started, already):
                    stopped_by, finished = "time", True
                progress.train_seconds = already + time.perf_counter() - started
                if epoch_done and progress.epoch % config.eval_every == 0 and not finished:
                    results = self._evaluate_and_select()
                if finished:
                    break
                if epoch_done or (config.checkpoint_every > 0 and progress.step % config.checkpoint_every == 0):
                    self.save_checkpoint()
        if bar is not None:
            bar.close()
        progress.train_seconds = already + time.perf_counter() - started
        if progress.last_eval_step != progress.step:
            results = self._evaluate_and_select()
        self.save_checkpoint()
        return self._result(results, stopped_by, steps_here, time.perf_counter() - started)

    def _result(self, results: dict, stopped_by: str, steps_here: int, seconds_here: float) -> TrainResult:
        best = self.output_dir / BEST
        best_metrics = safe_load(best)["metrics"] if best.exists() else {}
        images_per_second = steps_here * self.config.batch_size * self.distributed.world_size / max(seconds_here, 1e-9)
        result = TrainResult(self.output_dir, self.output_dir / LAST, best if best.exists() else None,
                             self.progress.step, self.progress.train_seconds, images_per_second,
                             results, best_metrics, stopped_by)
        if self.is_main:
            summary = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
            (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        return result

    def _progress_bar(self):
        if not (self.show_progress and self.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=int(self.progress.total_steps), initial=self.progress.step,
                    desc=f"stage {self.stage}", dynamic_ncols=True)

    def _update_bar(self, bar, values: dict[str, float]) -> None:
        if bar is None:
            return
        if bar.total != int(self.progress.total_steps):
            bar.total = int(self.progress.total_steps)
        bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}",
                        img_s=f"{values['images_per_s']:.0f}", refresh=False)


def train(config: SPOTConfig, stage: int = 1, **kwargs: Any) -> TrainResult:
    """Build a Trainer and run it: ``train(get_preset('coco'), stage=1, data_path=..., output_dir=...)``."""
    trainer = Trainer(config, stage=stage, **kwargs)
    try:
        return trainer.fit()
    finally:
        if trainer.distributed.enabled and dist.is_initialized():
            dist.destroy_process_group()
