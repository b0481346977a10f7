"""Self-supervised pretraining of the tutorial's small ViT (DINO / iBOT self-distillation; not SPOT).

SPOT starts from a frozen self-supervised ViT (DINO, paper section 4): slot attention groups its
patch features into objects. The CPU miniature needs an encoder of that kind too, small enough to
train on two CPU cores. This module trains one with DINO (Caron et al., 2021) on the built-in
camouflage scenes:

    student(crop) -> head -> p_s = softmax(z_s / 0.1)
    teacher(crop) -> head -> p_t = softmax((z_t - center) / tau_t)   (teacher = EMA of student)
    loss = mean over pairs of a teacher's global crop and another student crop of -p_t . log p_s

DINO trains the class token only; slot attention reads the patch tokens. With
``patch_loss_weight > 0`` the recipe adds iBOT's masked-patch term (Zhou et al., 2022): some patches
of the student's global crops are replaced by a learned mask token, and at those positions the
student's patch tokens must match the teacher's (unmasked) patch tokens of the same crop:

    loss += w * mean over masked patches of -softmax((h_t - c_p) / tau_t) . log softmax(h_s / 0.1)

Two global crops (the full 64 px scale range 0.4-1) and a few local crops (32 px, scale 0.1-0.4),
all with colour jitter and random grey, so the features come to describe pattern and shape more
than colour. Crops are cut and resized for the whole batch at once with `roi_align`.

The defaults of `PretrainRecipe` are the recipe of the shipped weights (DINO + iBOT's term, a fixed
sin-cos position embedding, 2000 steps): on the validation scenes, k-means of their patch features
scores about 4 points mBO^i above the pixels, and a linear map recovers each patch's grid position
from its final feature (R^2 0.95), which SPOT's decoder needs: it has no position embedding of its
own (benchmarks/feature_probe.py).

`pretrain_encoder(recipe, out_dir)` runs it with atomic checkpoints and exact resume, and
`export_encoder` writes the backbone as safetensors with its recipe and sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from spot_tutorial.data.synthetic import SyntheticShapes
from spot_tutorial.errors import CheckpointError
from spot_tutorial.io.checkpoint_file import atomic_save
from spot_tutorial.model.encoder import add_position_embedding, small_vit
from spot_tutorial.runtime import capture_rng_state, restore_rng_state, seed_everything


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything that decides the pretrained weights: the ViT's shape, the data and DINO's settings."""

    image_size: int = 64
    patch_size: int = 8
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    scenes: int = 20000             # camouflage scenes rendered once (seed below)
    scene_seed: int = 424_242       # never a training or evaluation seed of the tutorials
    difficulty: str = "camouflage"
    steps: int = 2000
    batch_size: int = 64
    local_crops: int = 4
    local_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 300
    weight_decay: float = 0.04
    out_dim: int = 1024             # DINO prototypes
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    center_momentum: float = 0.9
    ema_start: float = 0.99         # teacher momentum, cosine to 1.0 over the run
    seed: int = 0
    patch_loss_weight: float = 1.0  # iBOT's masked-patch term (0: DINO alone)
    mask_ratio: tuple[float, float] = (0.1, 0.5)  # share of masked patches, drawn per crop
    # 0: timm's learned position embedding; s > 0: a fixed 2-D sin-cos code times s, never
    # trained. SPOT's decoder has no position embedding of its own and relies on the features
    # carrying position; a learned embedding shrinks to almost nothing here (random crops make
    # absolute position useless to DINO), a fixed one cannot.
    position_code: float = 1.0


def build_vit(recipe: PretrainRecipe) -> nn.Module:
    """The small timm ViT that is pretrained here (and loaded by the tutorial's encoder)."""
    vit = small_vit(recipe.image_size, recipe.patch_size, recipe.embed_dim, recipe.depth,
                    recipe.num_heads)
    if recipe.position_code > 0:
        grid = recipe.image_size // recipe.patch_size
        code = timm.layers.build_sincos2d_pos_embed([grid, grid], dim=recipe.embed_dim)  # [N, D]
        with torch.no_grad():
            vit.pos_embed.zero_()
            vit.pos_embed[0, vit.num_prefix_tokens:] = recipe.position_code * code
        vit.pos_embed.requires_grad_(False)
    return vit


class DINOHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> weight-normalised prototypes (DINO's projection head)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, bottleneck: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        self.prototypes = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.prototypes(F.normalize(self.mlp(features), dim=-1))


class DINO(nn.Module):
    """A student ViT + head, and its teacher: the exponential moving average of the student."""

    def __init__(self, recipe: PretrainRecipe) -> None:
        super().__init__()
        self.student = nn.ModuleDict({"vit": build_vit(recipe), "head": DINOHead(recipe.embed_dim,
                                                                                 recipe.out_dim)})
        self.teacher = nn.ModuleDict({"vit": build_vit(recipe), "head": DINOHead(recipe.embed_dim,
                                                                                 recipe.out_dim)})
        if recipe.patch_loss_weight > 0:  # iBOT: a head for the patch tokens of each branch
            for branch in (self.student, self.teacher):
                branch["patch_head"] = DINOHead(recipe.embed_dim, recipe.out_dim)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self.mask_token = nn.Parameter(torch.zeros(recipe.embed_dim))
        self.register_buffer("center", torch.zeros(recipe.out_dim))
        self.register_buffer("patch_center", torch.zeros(recipe.out_dim))

    @staticmethod
    def embed(branch: nn.ModuleDict, crops: torch.Tensor) -> torch.Tensor:
        return branch["head"](branch["vit"](crops))   # [B, out_dim] from the class token

    def embed_tokens(self, branch: nn.ModuleDict, crops: torch.Tensor,
                     masked: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-token and patch-token outputs [B, out_dim], [B, N, out_dim]; `masked` [B, N]."""
        vit = branch["vit"]
        patches = vit.patch_embed(crops)              # [B, h, w, D] (timm's dynamic-size layout)
        if masked is not None:
            patches = torch.where(masked.view(*patches.shape[:-1], 1), self.mask_token.to(patches.dtype),
                                  patches)
        tokens = vit.norm(vit.blocks(vit.norm_pre(add_position_embedding(vit, patches))))
        cls, patch_tokens = tokens[:, 0], tokens[:, vit.num_prefix_tokens:]
        return branch["head"](cls), branch["patch_head"](patch_tokens)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        for teacher, student in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
            teacher.mul_(momentum).add_(student.detach(), alpha=1 - momentum)


def random_crops(images: torch.Tensor, count: int, size: int, scale: tuple[float, float],
                 generator: torch.Generator) -> torch.Tensor:
    """`count` random resized crops of every image, [count * B, 3, size, size] (crop-major)."""
    batch, side = images.shape[0], images.shape[-1]
    n = count * batch
    area = torch.empty(n).uniform_(*scale, generator=generator) * side * side
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    width = (area * log_ratio.exp()).sqrt().clamp(4, side)
    height = (area / log_ratio.exp()).sqrt().clamp(4, side)
    x0 = torch.rand(n, generator=generator) * (side - width)
    y0 = torch.rand(n, generator=generator) * (side - height)
    index = torch.arange(batch).repeat(count).float()
    boxes = torch.stack([index, x0, y0, x0 + width, y0 + height], dim=1)
    crops = roi_align(images, boxes, output_size=size, aligned=True)
    flip = torch.rand(n, generator=generator) < 0.5
    crops[flip] = crops[flip].flip(-1)
    return crops


def colour_jitter(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-crop brightness, contrast, saturation and hue-like channel mixing, and random grey."""
    n = crops.shape[0]

    def factor(low: float, high: float) -> torch.Tensor:
        return torch.empty(n, 1, 1, 1).uniform_(low, high, generator=generator)

    grey = crops.mean(dim=1, keepdim=True)
    crops = grey + (crops - grey) * factor(0.2, 1.8)                       # saturation
    crops = crops.mean(dim=(1, 2, 3), keepdim=True) + (crops - crops.mean(dim=(1, 2, 3), keepdim=True)
                                                       ) * factor(0.6, 1.4)  # contrast
    crops = crops * factor(0.6, 1.4)                                        # brightness
    shift = torch.randint(0, 3, (n,), generator=generator)                 # a channel rotation
    crops = torch.stack([crops[i].roll(int(shift[i]), dims=0) for i in range(n)])
    to_grey = torch.rand(n, generator=generator) < 0.2
    crops[to_grey] = crops[to_grey].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    return crops.clamp(0, 1)


def normalise(crops: torch.Tensor) -> torch.Tensor:
    from spot_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (crops - mean) / std


def dino_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, center: torch.Tensor,
              recipe: PretrainRecipe, batch: int) -> torch.Tensor:
    """Cross-entropy of the teacher's 2 global views against every other student view."""
    teacher_p = F.softmax((teacher_out - center) / recipe.teacher_temp, dim=-1).chunk(2)
    student_logp = F.log_softmax(student_out / recipe.student_temp, dim=-1).split(batch)
    terms = [-(t * s).sum(-1).mean() for i, t in enumerate(teacher_p)
             for j, s in enumerate(student_logp) if i != j]
    return torch.stack(terms).mean()


def random_patch_masks(count: int, patches: int, ratio: tuple[float, float],
                       generator: torch.Generator) -> torch.Tensor:
    """For each crop, a random share (drawn in `ratio`) of its patches to mask.  # [count, N] bool"""
    share = torch.empty(count, 1).uniform_(*ratio, generator=generator)
    return torch.rand(count, patches, generator=generator) < share


def masked_patch_loss(student_patches: torch.Tensor, teacher_patches: torch.Tensor,
                      center: torch.Tensor, masked: torch.Tensor, recipe: PretrainRecipe) -> torch.Tensor:
    """iBOT's term: cross-entropy teacher -> student on the masked patches of the same crop."""
    teacher_p = F.softmax((teacher_patches - center) / recipe.teacher_temp, dim=-1)  # [B, N, K]
    student_logp = F.log_softmax(student_patches / recipe.student_temp, dim=-1)
    per_patch = -(teacher_p * student_logp).sum(-1)                                  # [B, N]
    return (per_patch * masked).sum() / masked.sum().clamp(min=1)


def render_scenes(recipe: PretrainRecipe) -> torch.Tensor:
    """The pretraining images in [0, 1], [scenes, 3, S, S] uint8-exact (rendered once)."""
    scenes = SyntheticShapes(recipe.scenes, recipe.image_size, difficulty=recipe.difficulty,
                             seed=recipe.scene_seed, normalize=False)
    images = torch.stack([torch.from_numpy(scenes.render(i)["image"]) for i in range(len(scenes))])
    return (images.permute(0, 3, 1, 2) * 255).round().to(torch.uint8)


def train_step(model: DINO, optimizer: torch.optim.Optimizer, images: torch.Tensor, step: int,
               recipe: PretrainRecipe, generator: torch.Generator) -> float:
    """One DINO step: crops -> student and teacher -> loss -> AdamW -> EMA teacher, new centre."""
    lr = recipe.lr * min(1.0, (step + 1) / recipe.warmup_steps) * 0.5 * (
        1 + math.cos(math.pi * step / recipe.steps))
    for group in optimizer.param_groups:
        group["lr"] = lr
    batch = images.shape[0]
    global_crops = normalise(colour_jitter(random_crops(images, 2, recipe.image_size, (0.4, 1.0),
                                                        generator), generator))
    local_crops = normalise(colour_jitter(random_crops(images, recipe.local_crops, recipe.local_size,
                                                       (0.1, 0.4), generator), generator))
    if recipe.patch_loss_weight > 0:
        loss, teacher_out, teacher_patches = ibot_losses(model, global_crops, local_crops, recipe,
                                                         batch, generator)
    else:
        with torch.no_grad():
            teacher_out = model.embed(model.teacher, global_crops)      # [2B, out_dim]
        student_out = torch.cat([model.embed(model.student, global_crops),
                                 model.embed(model.student, local_crops)])   # [(2+L)B, out_dim]
        loss = dino_loss(student_out, teacher_out, model.center, recipe, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.student.parameters(), 3.0)
    optimizer.step()
    momentum = 1 - (1 - recipe.ema_start) * 0.5 * (1 + math.cos(math.pi * step / recipe.steps))
    model.update_teacher(momentum)
    with torch.no_grad():
        model.center.mul_(recipe.center_momentum).add_(teacher_out.mean(0),
                                                       alpha=1 - recipe.center_momentum)
        if recipe.patch_loss_weight > 0:
            model.patch_center.mul_(recipe.center_momentum).add_(
                teacher_patches.mean((0, 1)), alpha=1 - recipe.center_momentum)
    return float(loss.detach())


def ibot_losses(model: DINO, global_crops: torch.Tensor, local_crops: torch.Tensor,
                recipe: PretrainRecipe, batch: int, generator: torch.Generator):
    """DINO's class-token loss plus the weighted masked-patch loss; also the teacher's outputs."""
    with torch.no_grad():
        teacher_out, teacher_patches = model.embed_tokens(model.teacher, global_crops)
    masked = random_patch_masks(global_crops.shape[0], teacher_patches.shape[1], recipe.mask_ratio,
                                generator)                                   # [2B, N]
    student_global, student_patches = model.embed_tokens(model.student, global_crops, masked)
    student_out = torch.cat([student_global, model.embed(model.student, local_crops)])
    loss = dino_loss(student_out, teacher_out, model.center, recipe, batch)
    loss = loss + recipe.patch_loss_weight * masked_patch_loss(student_patches, teacher_patches,
                                                               model.patch_center, masked, recipe)
    return loss, teacher_out, teacher_patches


def pretrain_encoder(recipe: PretrainRecipe, out_dir: str | Path, checkpoint_every: int = 200,
                     log_every: int = 50, max_steps: int | None = None) -> Path:
    """Run (or resume) the pretraining in `out_dir`; returns the exported safetensors file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(recipe.seed)
    model = DINO(recipe)
    optimizer = torch.optim.AdamW([*model.student.parameters(), model.mask_token], lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    generator = torch.Generator().manual_seed(recipe.seed)
    step = 0
    state_path = out / "pretrain_state.pt"
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state["recipe"] != dataclasses.asdict(recipe):
            raise CheckpointError(f"{state_path} was written with another recipe; pass a new out_dir "
                                  "or delete that folder to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        restore_rng_state(state["rng"])
        step = state["step"]
    images = render_scenes(recipe)
    stop = recipe.steps if max_steps is None else min(recipe.steps, max_steps)
    started, log = time.time(), (out / "pretrain_log.jsonl").open("a")
    while step < stop:
        index = torch.randint(len(images), (recipe.batch_size,), generator=generator)
        loss = train_step(model, optimizer, images[index].float() / 255, step, recipe, generator)
        step += 1
        if step % log_every == 0 or step == stop:
            log.write(json.dumps({"step": step, "loss": round(loss, 5),
                                  "minutes": round((time.time() - started) / 60, 2)}) + "\n")
            log.flush()
        if step % checkpoint_every == 0 or step == stop:
            atomic_save({"recipe": dataclasses.asdict(recipe), "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                         "rng": capture_rng_state(), "step": step}, state_path)
    log.close()
    return export_encoder(model.teacher["vit"], recipe, out / "encoder.safetensors")


def export_encoder(vit: nn.Module, recipe: PretrainRecipe, path: str | Path) -> Path:
    """The teacher's backbone as safetensors, its recipe inside the file and its sha256 beside it."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in vit.state_dict().items()}
    save_file(state, str(path), metadata={"recipe": json.dumps(dataclasses.asdict(recipe))})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".sha256").write_text(f"{digest}  {path.name}\n")
    return path
