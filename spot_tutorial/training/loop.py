"""Training for both stages of SPOT (paper, section 4 "Implementation details" and appendix).

Stage 1 trains the *teacher*: slot attention + autoregressive decoder on a frozen ViT, each
batch decoded in a random patch order, loss = MSE of the reconstructed features.
Stage 2 trains a new *student* (learned slot embeddings, bi-level truncation, the last ViT
blocks fine-tuned) with loss = MSE + w * CE, where CE distils the frozen teacher's decoder
masks into the student's slot-attention masks (`spot_tutorial.training.objective`).

Every optimisation step: lr and w from their schedules (`spot_tutorial.training.schedules`), the batch's
loss, then Adam after clipping the gradient in the infinity norm (`spot_tutorial.training.optimizers`).
That loop is `Trainer.fit`; what a real run needs around it lives in modules of its own:
mixed precision and random states (`spot_tutorial.runtime`: bf16 autocast where the GPU has
native bf16, fp16 with gradient scaling on older GPUs such as a T4 or V100), several GPUs with
torchrun (`training.distributed`), exact resumption (`training.run_state`: a run killed at any
moment and restarted with ``resume=True`` ends with the same weights as one never interrupted),
and the logs, curves and figures (`training.logs`).

Which checkpoint to report: the paper reports the *last* one, and so does this trainer (last.pt).
The periodic evaluation on the evaluation split (COCO val2017, VOC val) is a learning curve only;
nothing is chosen by it. Model selection (best.pt) happens only when asked for, on training
images held out from training (``selection_images``, see ``spot_tutorial.data.registry``).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spot_tutorial import viz
from spot_tutorial.config import SPOTConfig  # noqa: F401 - their old home
from spot_tutorial.data import build_datasets
from spot_tutorial.data.decode import collate_training, images_on_device
from spot_tutorial.data.registry import holdout_split
from spot_tutorial.errors import ConfigError
from spot_tutorial.io.checkpoint_file import atomic_save, safe_load
from spot_tutorial.io.official import initialize_from
from spot_tutorial.model.spot import SPOT
from spot_tutorial.runtime import autocast as precision_autocast
from spot_tutorial.runtime import (
    capture_rng_state,
    cpu_has_native_bf16,
    data_workers,
    evaluation_precision,
    isolated_rng,
    resolve_device,
    seed_everything,
    training_precision,
)
from spot_tutorial.training.distributed import EpochSampler, ShardSampler, init_distributed
from spot_tutorial.training.feature_cache import cached_features
from spot_tutorial.training.logs import ProgressBar, RunLog
from spot_tutorial.training.objective import (
    batch_loss,
    check_teacher,
    copy_encoder_from_teacher,
    load_teacher,
    teacher_sees_student_targets,
)
from spot_tutorial.training.optimizers import adam, apply_gradients, trainable_parameters
from spot_tutorial.training.run_state import (
    BEST,
    LAST,
    Progress,
    best_state,
    check_selection,
    checkpoint_due,
    prepare_output_dir,
    resume_run,
    run_state,
    selection_improves,
)
from spot_tutorial.training.schedules import (
    ce_weight,
    fits_time_budget,
    learning_rate,
    planned_steps,
    steps_in_budget,
)

FIGURE_IMAGES = 4  # evaluation images shown in the figures written at each evaluation
EVAL_SEED_OFFSET = 12345  # evaluation draws its slot noise from seed + this, apart from training


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient became NaN or infinite; training stopped."""


def non_finite_error(what: str, value: torch.Tensor, progress: Progress, last: Path) -> NonFiniteLossError:
    """The error that stops a run whose loss or gradient is NaN/inf, saying what is kept and what to do."""
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
    return NonFiniteLossError(
        f"the {what} is {float(value.detach().float())} at step {progress.step} "
        f"(epoch {progress.epoch}); training stopped and nothing was saved after it: {kept}. "
        "Lower lr_main (--lr-main) or clip (--clip), check the data, then resume with --resume "
        "or restart.")


def save_step_figure(model: SPOT, figure_batch: tuple[torch.Tensor, dict], device: torch.device,
                     orders: Any, autocast: Any, path: Path) -> None:
    """Slot and decoder masks of the figure images beside their ground truth, written to `path`."""
    images, ground_truth = figure_batch
    images = images.to(device)
    with torch.no_grad(), isolated_rng(device, 0), autocast:
        was_training = model.training
        output = model.eval()(images, orders=orders)
        model.train(was_training)
    masks = {**ground_truth, "slot masks": output.slot_masks.float(),
             "decoder masks": output.decoder_masks.float()}
    viz.save_mask_figure(path, images.cpu(), masks, dpi=80)


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


def train_result(output_dir: Path, progress: Progress, images_per_second: float, final_metrics: dict,
                 stopped_by: str) -> TrainResult:
    """What `fit` returns: the checkpoints written, the steps and time, the last metrics."""
    best = output_dir / BEST
    best_metrics = safe_load(best)["metrics"] if best.exists() else {}
    return TrainResult(output_dir, output_dir / LAST, best if best.exists() else None, progress.step,
                       progress.train_seconds, images_per_second, final_metrics, best_metrics, stopped_by)


@dataclass
class RunClock:
    """The wall time of one `fit` call: training seconds (those of earlier, resumed calls
    included) and the images since the last log line (for images/s)."""
    already: float = 0.0  # training seconds of the run before this call
    started: float = field(default_factory=time.perf_counter)
    steps: int = 0  # steps made in this call
    window_images: int = 0
    window_start: float = field(default_factory=time.perf_counter)

    def seconds_here(self) -> float:
        return time.perf_counter() - self.started

    def train_seconds(self) -> float:
        return self.already + self.seconds_here()

    def out_of(self, max_minutes: float) -> bool:
        """Whether the training time has reached `max_minutes` (never, for max_minutes <= 0)."""
        return max_minutes > 0 and self.train_seconds() >= max_minutes * 60.0

    def images_per_second_since_last_log(self) -> float:
        now = time.perf_counter()
        rate = self.window_images / max(now - self.window_start, 1e-9)
        self.window_start, self.window_images = now, 0
        return rate


def train_loader(train_set: Dataset, sampler: EpochSampler, config: SPOTConfig, epoch: int, rank: int,
                 device: torch.device) -> DataLoader:
    """The DataLoader of one epoch (its sampler resumes mid-epoch); worker seeds from seed, epoch, rank."""
    generator = torch.Generator().manual_seed(config.seed * 7919 + epoch * 31 + rank)
    return DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                      num_workers=data_workers(config.num_workers), pin_memory=device.type == "cuda",
                      drop_last=True, generator=generator, collate_fn=collate_training,
                      persistent_workers=False)


def build_model(config: SPOTConfig, encoder_weights: str | None = None,
                pretrained: bool | None = None) -> SPOT:
    """SPOT from the config; pretrained encoder weights unless it is the CPU 'tiny' encoder."""
    if pretrained is None:
        pretrained = config.which_encoder != "tiny"
    return SPOT.from_config(config, pretrained=pretrained, weights_path=encoder_weights)


def check_stage(stage: int, teacher: str | os.PathLike | None, config: SPOTConfig) -> None:
    if stage not in (1, 2):
        raise ConfigError(f"stage must be 1 (teacher) or 2 (self-training), got {stage!r}")
    if stage == 2 and teacher is None:
        raise ConfigError("stage 2 needs the stage-1 teacher checkpoint: pass teacher=PATH (--teacher)")
    if stage == 1 and teacher is not None:
        raise ConfigError("a teacher checkpoint is only used in stage 2; drop --teacher or use --stage 2")
    if stage == 2 and config.init_method != "embedding":
        warnings.warn("stage 2 with init_method != 'embedding': the paper's student uses learned "
                      "slot embeddings (see spot_tutorial.recipes.student_config)", stacklevel=3)


def wrap_for_processes(model: nn.Module, distributed: bool, device: torch.device) -> nn.Module:
    """The module the step calls: `model` itself, or its DistributedDataParallel wrapper when
    several processes train together (gradients averaged across them)."""
    if not distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def warn_if_bf16_is_emulated(config: SPOTConfig, device: torch.device) -> None:
    if config.cpu_bf16 and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("cpu_bf16=True on a CPU without AVX512-BF16 or AMX: bf16 is emulated there and "
                      "training gets slower, not faster; drop --cpu-bf16", stacklevel=4)


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
        check_stage(stage, teacher, config)
        self.config, self.stage, self.output_dir = config, stage, Path(output_dir)
        self.select_by = check_selection(select_by, config)
        self.teacher_path = None if teacher is None else str(teacher)
        self.init_from = None if init_from is None else str(init_from)
        self.on_checkpoint, self.show_progress = on_checkpoint, progress

        self.device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        self.distributed = init_distributed(self.device)
        self.is_main = self.distributed.is_main
        seed_everything(config.seed)  # the same initial weights in every process
        prepare_output_dir(self.output_dir, resume, overwrite, self.is_main, self.distributed.barrier)
        self._build_data(datasets, data_path, mask_path)
        self._build_models(encoder_weights, resume)
        if config.cache_features:
            self.train_set = cached_features(self.train_set, self.model.encoder, config)
        self.optimizer = adam(trainable_parameters(self.model), config.lr_main)
        # fp16 needs loss scaling; for bf16 and fp32 the scaler is disabled and does nothing
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.train_model = wrap_for_processes(self.model, self.distributed.enabled, self.device)

        self.sampler = EpochSampler(len(self.train_set), config.batch_size, config.seed,
                                    self.distributed.rank, self.distributed.world_size)
        self.progress = Progress(total_steps=planned_steps(config, self.sampler.steps_per_epoch))
        seed_everything(config.seed + self.distributed.rank)  # own orders and noise per process
        if resume:
            self._resume()
        self.log = RunLog(self.output_dir, enabled=self.is_main)
        self._figure_batch: tuple[torch.Tensor, dict] | None = None  # images and ground truth, read once

    # -- setup -----------------------------------------------------------------------------
    def _build_data(self, datasets, data_path, mask_path) -> None:
        """Data first: a missing dataset is reported before any weights are downloaded."""
        if datasets is None:
            datasets = build_datasets(self.config, data_path, mask_path)
        train_set, eval_set = datasets
        self.selection_set = None  # held-out training images that choose best.pt
        if self.select_by is not None:
            train_set, self.selection_set = holdout_split(self.config, train_set, data_path, mask_path)
        self.train_set, self.eval_set = train_set, eval_set
        self.eval_has_masks = "instance_mask" in eval_set[0]  # an image folder may have no masks

    def _build_models(self, encoder_weights: str | None, resume: bool) -> None:
        """The model to train and, in stage 2, its frozen teacher (whose ViT the student starts from)."""
        config = self.config
        self.teacher = load_teacher(self.teacher_path, self.device) if self.stage == 2 else None
        if self.teacher is not None:
            check_teacher(self.teacher, config)
        self.model = build_model(config, encoder_weights,
                                 pretrained=False if self.stage == 2 or self.init_from is not None else None)
        if self.teacher is not None:
            copy_encoder_from_teacher(self.model, self.teacher)
        self.init_report = None  # fine-tuning: weights from another checkpoint (ours or the authors')
        if self.init_from is not None and not (resume and (self.output_dir / LAST).exists()):
            self.init_report = initialize_from(self.model, self.init_from)
            if self.is_main:
                print(f"[spot] {self.init_report.summary()}")
        self.teacher_on_targets = (self.teacher is not None
                                   and teacher_sees_student_targets(self.teacher, self.model))
        self.model.to(self.device)
        warn_if_bf16_is_emulated(config, self.device)
        if config.torch_compile:  # same weights and checkpoints; faster steps after the first
            self.model.compile_modules()

    def _resume(self) -> None:
        progress = resume_run(self.output_dir / LAST, self.config, self.stage, self.model, self.optimizer,
                              self.scaler, self.distributed.rank, self.distributed.world_size, self.is_main)
        if progress is not None:  # `epochs` / `max_steps` may have grown since
            self.progress = progress
            self.progress.total_steps = planned_steps(self.config, self.sampler.steps_per_epoch)

    # -- data ----------------------------------------------------------------------------------
    def _train_loader(self) -> DataLoader:
        return train_loader(self.train_set, self.sampler, self.config, self.progress.epoch,
                            self.distributed.rank, self.device)

    def eval_loader(self, dataset: Dataset | None = None) -> DataLoader:
        dataset = self.eval_set if dataset is None else dataset
        sampler = ShardSampler(len(dataset), self.distributed.rank, self.distributed.world_size)
        return DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler,
                          num_workers=data_workers(self.config.num_workers),
                          pin_memory=self.device.type == "cuda")

    # -- one step --------------------------------------------------------------------------------
    @property
    def precision(self) -> str:
        """The training step's precision: 'bf16', 'fp16' or 'fp32' (`precision.training_precision`).

        Periodic evaluation runs in bf16 only where the step does, and in fp32 otherwise.
        """
        return training_precision(self.device, bf16=self.config.bf16, cpu_bf16=self.config.cpu_bf16)

    def autocast(self):
        """The autocast context of `precision` (a no-op for fp32)."""
        return precision_autocast(self.device, self.precision)

    def train_step(self, images: torch.Tensor, features: torch.Tensor | None = None) -> dict[str, float]:
        """One optimisation step on a batch of images [B, 3, H, W] (and their cached encoder
        features [B, N, D], if any); returns its log values."""
        step, total = self.progress.step, self.progress.total_steps
        lr = learning_rate(step, total, self.config)            # the schedules: lr and w at this step
        weight = ce_weight(step, total, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.autocast():                                    # forward and loss (stage 2: + w * CE)
            loss, record = batch_loss(self.train_model, images, self.teacher, weight, self.teacher_on_targets,
                                      self.config.teacher_targets, features)
        if not self.distributed.all_finite([loss]):
            self._stop_non_finite("loss", loss)
        grad_norm = apply_gradients(self.model, self.optimizer, loss, self.config.clip,  # backward,
                                    check=self._check_gradient, scaler=self.scaler)       # clip, Adam
        record.update(loss=loss.detach(), grad_norm=grad_norm.detach())
        return {"lr": lr, **{k: float(v) for k, v in record.items()}}

    def _check_gradient(self, grad_norm: torch.Tensor) -> None:
        if not self.distributed.all_finite([grad_norm]):
            self._stop_non_finite("gradient (infinity norm)", grad_norm)

    def _stop_non_finite(self, what: str, value: torch.Tensor) -> None:
        raise non_finite_error(what, value, self.progress, self.output_dir / LAST)

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until the planned steps are done or the time budget is spent.

        Each batch: move it to the device -> `train_step` (schedules, forward, loss, backward,
        clip, Adam) -> count it -> log -> stop? -> evaluate after every `eval_every` epochs ->
        checkpoint after each epoch (and every `checkpoint_every` steps). At the end: a last
        evaluation and last.pt.
        """
        progress, clock = self.progress, RunClock(already=self.progress.train_seconds)
        self.log.open(self.config.to_json(), progress.step)
        self.model.train()
        bar = ProgressBar(progress.total_steps, progress.step, f"stage {self.stage}",
                          enabled=self.show_progress and self.is_main)
        stopped_by, results = "steps", {}
        while progress.step < progress.total_steps and stopped_by == "steps":
            self.sampler.set_epoch(progress.epoch, progress.batch_in_epoch)
            for batch in self._train_loader():
                images, features = self._on_device(batch)
                values = self.train_step(images, features)
                epoch_done = self._count_step(images.shape[0], clock)
                self._log_step(values, clock, bar)
                if epoch_done:
                    progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
                finished, stopped_by = self._stop_reason(clock)
                if epoch_done and progress.epoch % self.config.eval_every == 0 and not finished:
                    results = self._evaluate_and_select()
                if finished:
                    break
                if epoch_done or checkpoint_due(self.progress.step, self.config.checkpoint_every):
                    self.save_checkpoint()
        bar.close()
        progress.train_seconds = clock.train_seconds()
        if progress.last_eval_step != progress.step:
            results = self._evaluate_and_select()
        self.save_checkpoint()
        return self._result(results, stopped_by, clock)

    # -- the loop's helpers, in the order it calls them -----------------------------------------------
    def _on_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's images [B, 3, H, W] (decode='gpu': decoded here) and cached features [B, N, D]."""
        images = images_on_device(batch["image"], self.device)
        features = batch.get("features")  # with config.cache_features
        return images, None if features is None else features.to(self.device, non_blocking=True)

    def _count_step(self, batch_size: int, clock: "RunClock") -> bool:
        """Advance the step and epoch counters; with a time budget, re-fit the schedule's length T
        to the steps that fit at this speed. Returns whether the epoch just ended."""
        progress = self.progress
        progress.step += 1
        progress.batch_in_epoch += 1
        clock.steps += 1
        clock.window_images += batch_size * self.distributed.world_size
        if fits_time_budget(self.config):
            elapsed = self.distributed.agree(clock.train_seconds(), dist.ReduceOp.MAX, self.device)
            planned = planned_steps(self.config, self.sampler.steps_per_epoch)
            progress.total_steps = steps_in_budget(progress.step, elapsed, planned, self.config)
        return progress.batch_in_epoch == self.sampler.steps_per_epoch

    def _log_step(self, values: dict[str, float], clock: "RunClock", bar: ProgressBar) -> None:
        """Every `log_every` steps (and the first): the values and images/s to the logs and the bar."""
        progress = self.progress
        if progress.step % self.config.log_every == 0 or progress.step == 1:
            values["images_per_s"] = clock.images_per_second_since_last_log()
            self.log.train(progress.step, progress.epoch, values)
            bar.show(values, progress.total_steps)
        bar.update()

    def _stop_reason(self, clock: "RunClock") -> tuple[bool, str]:
        """(finished, 'steps' or 'time'): the planned steps are done, or the time budget is spent."""
        progress = self.progress
        finished, stopped_by = progress.step >= progress.total_steps, "steps"
        if self._time_is_up(clock):
            finished, stopped_by = True, "time"
        progress.train_seconds = clock.train_seconds()
        return finished, stopped_by

    def _time_is_up(self, clock: "RunClock") -> bool:
        out_of_time = clock.out_of(self.config.max_minutes)  # any process out of time: all stop
        return bool(self.distributed.agree(out_of_time, dist.ReduceOp.MAX, self.device))

    def _result(self, results: dict, stopped_by: str, clock: "RunClock") -> TrainResult:
        images_here = clock.steps * self.config.batch_size * self.distributed.world_size
        result = train_result(self.output_dir, self.progress, images_here / max(clock.seconds_here(), 1e-9),
                              results, stopped_by)
        self.log.summary({k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()})
        return result
    # -- evaluation, model selection, checkpoints --------------------------------------------------
    def evaluate(self, dataset: Dataset | None = None) -> dict[str, dict[str, float]]:
        """Slot- and decoder-mask metrics on the evaluation set, or on `dataset` (stage-1 style:
        'standard' order).

        Runs in a forked random state with a fixed seed, so evaluating (or not) never changes
        the training run, and the numbers of a given model are reproducible.
        """
        from spot_tutorial.evaluation.evaluate import evaluate_model

        with isolated_rng(self.device, self.config.seed + EVAL_SEED_OFFSET):
            return evaluate_model(self.model, self.eval_loader(dataset), self.device,
                                  orders=self.config.eval_orders,
                                  progress=self.show_progress and self.is_main,
                                  precision=evaluation_precision(self.device, amp=self.precision == "bf16"))

    def _evaluate_and_select(self) -> dict[str, dict[str, float]]:
        """The learning curve on the evaluation split and its figure, then model selection if asked for."""
        self.progress.last_eval_step = self.progress.step
        if not self.eval_has_masks:  # images without ground truth: figures, no metrics
            if self.is_main:
                self._save_figure()
            return {}
        results = self.evaluate()
        self.log.evaluation("eval", self.progress.step, self.progress.epoch, results)
        if self.is_main:
            self._save_figure()
        self._save_best()
        return results

    def _save_figure(self) -> None:
        """Masks of the first evaluation images at this step: figures/step_XXXXXXX.png."""
        if self._figure_batch is None:
            self._figure_batch = viz.figure_images(self.eval_set, FIGURE_IMAGES)
        save_step_figure(self.model, self._figure_batch, self.device, self.config.eval_orders,
                         self.autocast(), self.log.figure_path(self.progress.step))

    def _save_best(self) -> None:
        """Score the model on the held-out training images; best.pt keeps the best one so far."""
        if self.selection_set is None:
            return
        results = self.evaluate(self.selection_set)
        self.log.evaluation("selection", self.progress.step, self.progress.epoch, results)
        if selection_improves(results, self.select_by, self.progress) and self.is_main:
            atomic_save(best_state(self.stage, self.config, self.model, self.progress.step, results,
                                   self.select_by, f"{len(self.selection_set)} held-out training images"),
                        self.output_dir / BEST)

    def save_checkpoint(self) -> None:
        """last.pt: everything needed to continue exactly (written atomically; every process joins)."""
        rng_states = self.distributed.gather(capture_rng_state())
        if self.is_main:
            atomic_save(run_state(self.stage, self.config, self.model, self.optimizer, self.progress,
                                  rng_states, self.teacher_path, self.init_from, self.scaler),
                        self.output_dir / LAST)
            if self.on_checkpoint is not None:
                self.on_checkpoint(self.progress.step)


def train(config: SPOTConfig, stage: int = 1, **kwargs: Any) -> TrainResult:
    """Build a Trainer and run it: ``train(get_preset('coco'), stage=1, data_path=..., output_dir=...)``."""
    trainer = Trainer(config, stage=stage, **kwargs)
    try:
        return trainer.fit()
    finally:
        trainer.distributed.shutdown()
