"""Evaluation as in the paper: the metrics, the evaluation loop and report, trivial baselines.

    metrics     FG-ARI, mBO^i, mBO^c, mIoU (and P-ARI, PQ on panoptic ground truth)
    evaluate    evaluate_model over a DataLoader, the results table, `spot evaluate`'s run
    baselines   masks that know nothing about the image (a fixed grid), for scale

May import: `spot_tutorial.model`, `spot_tutorial.data`, `spot_tutorial.io`, `spot_tutorial.viz`,
`spot_tutorial.recipes`, `spot_tutorial.runtime`, `spot_tutorial.config`, `spot_tutorial.errors`.
"""

from spot_tutorial.evaluation.baselines import grid_baseline, grid_masks
from spot_tutorial.evaluation.evaluate import evaluate_model, results_table
from spot_tutorial.evaluation.metrics import SegmentationMetrics

__all__ = ["SegmentationMetrics", "evaluate_model", "results_table", "grid_baseline", "grid_masks"]
