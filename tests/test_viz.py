"""Tests for the figure writer shared by training, evaluation and the quickstart (spot_tutorial.viz.masks)."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from spot_tutorial.data import SyntheticShapes  # noqa: E402
from spot_tutorial.viz.masks import figure_images, save_mask_figure  # noqa: E402


def test_figure_images_with_and_without_ground_truth():
    scenes = SyntheticShapes(5, 64, seed=0, mask_size=64)
    images, truth = figure_images(scenes, 3)
    assert images.shape == (3, 3, 64, 64) and truth["ground truth"].shape == (3, 64, 64)
    assert torch.equal(images[2], scenes[2]["image"])
    no_masks = [{"image": scenes[i]["image"]} for i in range(2)]
    images, truth = figure_images(no_masks, 4)
    assert images.shape == (2, 3, 64, 64) and truth == {}


def test_save_mask_figure_writes_one_row_per_image_and_a_column_per_mask_kind(tmp_path):
    scenes = SyntheticShapes(4, 64, seed=0, mask_size=64)
    images, masks = figure_images(scenes, 2)
    masks["soft masks"] = torch.rand(2, 5, 8, 8)
    path = save_mask_figure(tmp_path / "masks.png", images, masks, dpi=50)
    width, height = Image.open(path).size
    # 3 columns (image, ground truth, soft masks) x 2 rows of 2.2 inch panels at 50 dpi
    assert (width, height) == (round(3 * 2.2 * 50), round(2 * 2.2 * 50))


def _same_figure_by_hand(path, models, images, masks, count, names):
    """The mask figure written directly with `save_mask_figure` from the models' masks."""
    masks = dict(masks)
    with torch.no_grad():
        for model, (slot_name, decoder_name) in zip(models, names, strict=True):
            torch.manual_seed(0)
            output = model.eval()(images)
            masks[slot_name] = output.slot_masks.float()
            masks[decoder_name] = output.decoder_masks.float()
    return save_mask_figure(path, images, masks, max_images=count, dpi=100)


def test_evaluation_and_quickstart_figures_are_the_viz_mask_figure(tmp_path):
    from spot_tutorial import SPOT, get_preset, load_model, save_model
    from spot_tutorial.apps.quickstart import save_teacher_student_figure
    from spot_tutorial.evaluation.evaluate import save_evaluation_figure

    scenes = SyntheticShapes(4, 64, seed=3, mask_size=64)
    teacher = SPOT.from_config(get_preset("tiny", init_method="embedding"))
    torch.manual_seed(1)
    student = SPOT.from_config(get_preset("tiny", init_method="embedding"))
    save_model(teacher, tmp_path / "teacher.pt")
    save_model(student, tmp_path / "student.pt")
    images, truth = figure_images(scenes, 3)

    torch.manual_seed(0)
    save_evaluation_figure(teacher, scenes, 3, "standard", torch.device("cpu"), tmp_path / "evaluation.png")
    _same_figure_by_hand(tmp_path / "evaluation_by_hand.png", [teacher], images, truth, 3,
                         [("slot masks", "decoder masks")])
    assert (tmp_path / "evaluation.png").read_bytes() == (tmp_path / "evaluation_by_hand.png").read_bytes()

    save_teacher_student_figure(tmp_path / "quickstart.png", tmp_path / "teacher.pt", tmp_path / "student.pt",
                                scenes, count=3, seed=0)
    loaded = [load_model(tmp_path / "teacher.pt"), load_model(tmp_path / "student.pt")]
    _same_figure_by_hand(tmp_path / "quickstart_by_hand.png", loaded, images, truth, 3,
                         [("teacher slot", "teacher decoder"), ("student slot", "student decoder")])
    assert (tmp_path / "quickstart.png").read_bytes() == (tmp_path / "quickstart_by_hand.png").read_bytes()
    width, height = Image.open(tmp_path / "quickstart.png").size
    assert (width, height) == (round(6 * 2.2 * 100), round(3 * 2.2 * 100))  # image, truth, 4 kinds
