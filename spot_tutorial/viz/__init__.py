"""Figures of the book and of the command line: everything drawn is drawn here.

    masks          images with masks over them, label PNGs, contact sheets, mask figures
    orders         the nine patch orders and one decoding step
    animation      HTML animations (slot-attention iterations, masks slot by slot, decoding)
    architecture   the SPOT diagram (paper, Fig. 2)
    curves         training curves from a run's log
    features       the PCA of an encoder's patch features as colours
    layers         the package's own layers, read from its source (book: How the library is organised)

May import: `spot_tutorial.model.permutations`, `spot_tutorial.data.transforms`,
`spot_tutorial.errors`, numpy, torch and matplotlib. No training, no metrics here.
"""

from spot_tutorial.viz.animation import (
    Animation,
    animate,
    decoding_animation,
    iterations_animation,
    slot_masks_animation,
)
from spot_tutorial.viz.architecture import architecture_figure
from spot_tutorial.viz.curves import TrainingLog, read_training_log, training_curves
from spot_tutorial.viz.features import feature_pca, feature_pca_figure
from spot_tutorial.viz.masks import (
    PALETTE,
    attention_rows_figure,
    contact_sheet,
    figure_images,
    label_maps,
    label_maps_figure,
    label_png,
    mask_figure,
    masks_by_row,
    overlay,
    overlay_png,
    save_mask_figure,
    slot_figure,
    to_rgb,
)
from spot_tutorial.viz.orders import SHORT_ORDER_NAMES, decoding_step_figure, orders_figure

__all__ = [
    "PALETTE", "to_rgb", "label_maps", "overlay", "label_png", "overlay_png", "contact_sheet",
    "mask_figure", "figure_images", "save_mask_figure", "slot_figure", "attention_rows_figure",
    "label_maps_figure", "masks_by_row", "SHORT_ORDER_NAMES", "orders_figure", "decoding_step_figure",
    "Animation", "animate", "iterations_animation", "slot_masks_animation", "decoding_animation",
    "architecture_figure", "TrainingLog", "read_training_log", "training_curves", "feature_pca",
    "feature_pca_figure",
]
