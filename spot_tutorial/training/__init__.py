"""Training SPOT's two stages (paper, section 3.3 and the appendix).

    loop            the Trainer: batch -> forward -> loss -> backward -> clip -> step -> log -> checkpoint
    objective       the loss of one batch in either stage
    self_training   stage 2's targets: the teacher's decoder masks, and the distillation loss
    run_state       what a resumable checkpoint holds beyond the model, and exact resume
    schedules       learning-rate warm-up and cosine decay, the distillation weight's schedule
    optimizers      Adam and the clipped update step
    distributed     torchrun / DDP set-up and the per-process data split
    logs            JSONL, CSV and TensorBoard log sinks
    pretrain_encoder  DINO pretraining of the CPU tutorial's small ViT (not part of SPOT)

May import everything below it: `spot_tutorial.evaluation`, `spot_tutorial.io`,
`spot_tutorial.model`, `spot_tutorial.data`, `spot_tutorial.runtime`, `spot_tutorial.recipes`,
`spot_tutorial.config`, `spot_tutorial.errors`.
"""

from spot_tutorial.training.loop import Trainer, TrainResult, train

__all__ = ["Trainer", "TrainResult", "train"]
