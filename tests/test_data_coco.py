"""Tests of spot_tutorial.data.coco on a tiny dataset written in the real COCO format."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from spot_tutorial.data import COCO2017, CorruptImageError

# pycocotools' mask decoding triggers a numpy 2 DeprecationWarning that is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Image 1 is 40 wide x 30 high; with mask_size=30 the centre crop drops 5 columns on each side.
W1, H1 = 40, 30
CROP = 5
CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
              {"id": 18, "name": "dog"}]  # unsorted on purpose; labels: 1->1, 18->2, 90->3


def _rectangle(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _uncompressed_rle(mask):
    """COCO uncompressed RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _crowd_mask():
    mask = np.zeros((H1, W1), dtype=bool)
    mask[20:28, 30:35] = True
    return mask


def _annotations():
    def ann(ann_id, image_id, cat, segmentation, crowd=0):
        return {"id": ann_id, "image_id": image_id, "category_id": cat, "iscrowd": crowd,
                "segmentation": segmentation, "area": 1.0, "bbox": [0, 0, 1, 1]}

    return [
        ann(10, 1, 18, _rectangle(8, 2, 22, 15)),            # instance 1, dog
        ann(20, 2, 1, _rectangle(0, 0, 10, 10)),             # other image, interleaved
        ann(11, 1, 1, _rectangle(16, 8, 28, 25)),            # instance 2, person, overlaps 1
        ann(12, 1, 90, _uncompressed_rle(_crowd_mask()), crowd=1),  # instance 3, crowd RLE
    ]


def _write_image(path, width, height, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture()
def coco_root(tmp_path):
    images = [
        {"id": 1, "file_name": "000000000001.jpg", "width": W1, "height": H1},
        {"id": 2, "file_name": "000000000002.jpg", "width": 24, "height": 32},
        {"id": 3, "file_name": "000000000003.jpg", "width": 30, "height": 30},  # no objects
    ]
    (tmp_path / "annotations").mkdir()
    for split in ("val", "train"):
        (tmp_path / f"{split}2017").mkdir()
        for info in images:
            _write_image(tmp_path / f"{split}2017" / info["file_name"], info["width"], info["height"])
    content = {"images": images, "annotations": _annotations(), "categories": CATEGORIES}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(content))
    return tmp_path


def test_item_format(coco_root):
    ds = COCO2017(coco_root, split="val", image_size=32, mask_size=30)
    assert len(ds) == 3 and ds.num_classes == 3
    assert ds.class_names == ["background", "person", "dog", "toothbrush"]
    item = ds[0]
    assert set(item) == {"image", "instance_mask", "class_mask", "ignore_mask"}
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    for key, dtype in [("instance_mask", torch.int64), ("class_mask", torch.int64),
                       ("ignore_mask", torch.bool)]:
        assert item[key].shape == (30, 30) and item[key].dtype == dtype


def test_ground_truth_values(coco_root):
    item = COCO2017(coco_root, mask_size=30)[0]
    inst, cls, ign = item["instance_mask"], item["class_mask"], item["ignore_mask"]

    def at(mask, x, y):  # (x, y) in original image pixels
        return mask[y, x - CROP].item()

    # only annotation 1: instance 1, dog -> label 2
    assert (at(inst, 10, 5), at(cls, 10, 5), at(ign, 10, 5)) == (1, 2, False)
    # overlap of 1 and 2: the first annotation keeps the pixel, and the pixel is ignored
    assert (at(inst, 19, 12), at(cls, 19, 12), at(ign, 19, 12)) == (1, 2, True)
    # only annotation 2: instance 2, person -> label 1
    assert (at(inst, 25, 20), at(cls, 25, 20), at(ign, 25, 20)) == (2, 1, False)
    # crowd RLE: instance 3, toothbrush -> label 3, exactly the written pixels
    crowd = _crowd_mask()[:, CROP:W1 - CROP]
    assert torch.equal(inst == 3, torch.from_numpy(crowd))
    assert torch.equal(cls == 3, torch.from_numpy(crowd))
    # background
    assert (at(inst, 6, 28), at(cls, 6, 28), at(ign, 6, 28)) == (0, 0, False)
    assert set(inst.unique().tolist()) == {0, 1, 2, 3}
    # ignored pixels are exactly those inside both rectangles
    assert ign.sum() > 0 and bool(((inst == 1) | ~ign).all())


def test_second_image_and_empty_image(coco_root):
    ds = COCO2017(coco_root, mask_size=32)
    second = ds[1]  # 24 x 32: resized to 32 x 42, centre crop 32
    assert second["instance_mask"].shape == (32, 32)
    assert set(second["instance_mask"].unique().tolist()) == {0, 1}
    assert set(second["class_mask"].unique().tolist()) == {0, 1}
    empty = ds[2]
    assert empty["instance_mask"].sum() == 0 and not empty["ignore_mask"].any()


def test_resized_masks_keep_ids(coco_root):
    item = COCO2017(coco_root, mask_size=64)[0]
    assert item["instance_mask"].shape == (64, 64)
    assert set(item["instance_mask"].unique().tolist()) == {0, 1, 2, 3}


def test_dataloader_collate(coco_root):
    batch = next(iter(DataLoader(COCO2017(coco_root, image_size=16, mask_size=20), batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 16)
    assert batch["instance_mask"].shape == (3, 20, 20)


def test_train_mode_needs_images_only(coco_root):
    ds = COCO2017(coco_root, split="train", image_size=16, train=True)
    assert len(ds) == 3
    item = ds[0]
    assert list(item) == ["image"] and item["image"].shape == (3, 16, 16)


def test_unknown_split(coco_root):
    with pytest.raises(ValueError, match="'train', 'val'"):
        COCO2017(coco_root, split="test")


def test_missing_annotation_file(coco_root):
    (coco_root / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(FileNotFoundError, match="instances_val2017.json") as info:
        COCO2017(coco_root)
    assert "cocodataset.org" in str(info.value)


def test_missing_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="val2017"):
        COCO2017(tmp_path)


def test_corrupt_image(coco_root):
    (coco_root / "val2017" / "000000000002.jpg").write_bytes(b"this is not a jpeg" * 10)
    ds = COCO2017(coco_root)
    with pytest.raises(CorruptImageError, match="000000000002.jpg") as info:
        ds[1]
    assert isinstance(info.value, ValueError) and "re-download" in str(info.value)


# ---------------------------------------------------------------------------------------------
# The ground truth against masks built independently, the authors' protocol step by step:
# every annotation (crowd ones too) in annotation-file order, instance id = 1 + position among
# the image's annotations, category ids -> 1..K in sorted-category order, the first annotation
# keeps an overlapped pixel and pixels covered twice or more are ignored; then each map is
# resized as a PIL image with PIL's nearest filter (shorter side -> mask size) and centre cropped.
PROTOCOL_CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"},
                       {"id": 44, "name": "bottle"}, {"id": 1, "name": "person"}]
PROTOCOL_LABELS = {1: 1, 3: 2, 44: 3, 90: 4}  # sorted category ids -> 1..4


def _l_shape(rng, width, height):
    """An L-shaped region with integer corners (the first rectangle may reach the image border).

    Returns the COCO polygon and the same region as two inclusive PIL rectangles: for polygons
    with integer corners on the pixel grid, pycocotools fills exactly the pixels whose centres
    lie inside, i.e. columns x0..x1-1 and rows y0..y1-1 of a rectangle."""
    x0, y0 = int(rng.integers(0, width - 12)), int(rng.integers(0, height - 12))
    x1 = int(min(width, x0 + rng.integers(6, 60)))
    y1 = int(min(height, y0 + rng.integers(6, 60)))
    xm, ym = int(rng.integers(x0 + 1, x1)), int(rng.integers(y0 + 1, y1))
    polygon = [x0, y0, x1, y0, x1, ym, xm, ym, xm, y1, x0, y1]
    rectangles = [(x0, y0, x1 - 1, ym - 1), (x0, ym, xm - 1, y1 - 1)]
    return polygon, rectangles


def _draw(rectangles, width, height):
    from PIL import ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for box in rectangles:
        draw.rectangle(box, fill=1)
    return np.asarray(canvas).astype(bool)


def _pil_resize_and_crop(labels, size):
    """The authors' Resize(size, NEAREST) + CenterCrop(size) on the PIL label image."""
    height, width = labels.shape
    if width <= height:
        new_height, new_width = int(size * height / width), size
    else:
        new_height, new_width = size, int(size * width / height)
    pixels = labels.astype(np.uint8) if labels.max() <= 255 else labels.astype(np.int32)
    resized = np.asarray(Image.fromarray(pixels).resize((new_width, new_height), Image.NEAREST))
    top, left = round((new_height - size) / 2), round((new_width - size) / 2)
    return resized[top:top + size, left:left + size].astype(np.int64)


@pytest.fixture()
def protocol_coco(tmp_path):
    """A COCO folder with JPEG and PNG images of odd sizes, L-shaped and multi-part polygons,
    overlaps, crowd regions as compressed and uncompressed RLE, an image with 270 annotations
    (ids > 255), an image without objects, and annotations of different images interleaved.

    Returns (root, expected) where expected maps image id -> per-annotation boolean masks,
    categories, in the annotation file's order."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(12)
    images = [
        {"id": 7, "file_name": "000000000007.jpg", "width": 173, "height": 131},
        {"id": 3, "file_name": "000000000003.png", "width": 97, "height": 211},
        {"id": 12, "file_name": "000000000012.jpg", "width": 150, "height": 150},  # no objects
        {"id": 5, "file_name": "000000000005.png", "width": 241, "height": 179},  # 270 objects
    ]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    for info in images:
        _write_image(tmp_path / "val2017" / info["file_name"], info["width"], info["height"],
                     seed=info["id"])
    sizes = {info["id"]: (info["width"], info["height"]) for info in images}
    annotations, expected = [], {info["id"]: [] for info in images}

    def add(image_id, category, segmentation, on, crowd=0):
        annotations.append({"id": int(rng.integers(1, 10**9)), "image_id": image_id,
                            "category_id": category, "iscrowd": crowd, "segmentation": segmentation,
                            "area": float(on.sum()), "bbox": [0, 0, 1, 1]})
        expected[image_id].append((on, category))

    def add_polygons(image_id, parts=1):
        width, height = sizes[image_id]
        shapes = [_l_shape(rng, width, height) for _ in range(parts)]
        on = _draw([box for _, boxes in shapes for box in boxes], width, height)
        category = int(rng.choice(list(PROTOCOL_LABELS)))
        add(image_id, category, [polygon for polygon, _ in shapes], on)

    def add_crowd(image_id, compressed):
        width, height = sizes[image_id]
        rows, cols = np.mgrid[:height, :width]
        centre_y, centre_x = rng.integers(0, height), rng.integers(0, width)
        on = (rows - centre_y) ** 2 / 900 + (cols - centre_x) ** 2 / 400 <= 1  # an ellipse
        on |= rng.random((height, width)) < 0.02  # scattered crowd pixels
        if compressed:
            rle = mask_utils.encode(np.asfortranarray(on.astype(np.uint8)))
            segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        else:
            segmentation = _uncompressed_rle(on)
        add(image_id, 44, segmentation, on, crowd=1)

    for step in range(6):  # images 7 and 3 interleaved in the file
        add_polygons(7, parts=1 + step % 2)
        add_polygons(3, parts=1 + (step + 1) % 2)
        if step == 2:
            add_crowd(7, compressed=True)
            add_crowd(3, compressed=False)
    for _ in range(270):  # small squares, many overlapping
        width, height = sizes[5]
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        side = int(rng.integers(3, 9))
        on = _draw([(x0, y0, x0 + side - 1, y0 + side - 1)], width, height)
        add(5, int(rng.choice(list(PROTOCOL_LABELS))),
            [[x0, y0, x0 + side, y0, x0 + side, y0 + side, x0, y0 + side]], on)
    content = {"images": images, "annotations": annotations, "categories": PROTOCOL_CATEGORIES}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(content))
    return tmp_path, expected


def _protocol_maps(annotations, width, height):
    """Instance, class and ignore maps at full resolution, built from per-annotation masks."""
    instance = np.zeros((height, width), dtype=np.int64)
    classes = np.zeros((height, width), dtype=np.int64)
    times_covered = np.zeros((height, width), dtype=np.int64)
    for position, (on, category) in enumerate(annotations):
        free = on & (instance == 0)
        instance[free] = position + 1
        classes[free] = PROTOCOL_LABELS[category]
        times_covered += on
    return instance, classes, times_covered >= 2


@pytest.mark.parametrize("mask_size", [128, 320])
def test_ground_truth_equals_independent_protocol_masks(protocol_coco, mask_size):
    root, expected = protocol_coco
    ds = COCO2017(root, image_size=32, mask_size=mask_size)
    assert ds.class_names == ["background", "person", "car", "bottle", "toothbrush"]
    assert [int(i) for i in ds.image_ids] == [3, 5, 7, 12]
    checked_large_ids = False
    for index, image_id in enumerate(ds.image_ids):
        info = ds.coco.loadImgs(image_id)[0]
        instance, classes, ignore = _protocol_maps(expected[image_id], info["width"], info["height"])
        item = ds[index]
        for key, full in [("instance_mask", instance), ("class_mask", classes),
                          ("ignore_mask", ignore.astype(np.int64))]:
            want = _pil_resize_and_crop(full, mask_size)
            got = item[key].numpy().astype(np.int64)
            assert got.shape == (mask_size, mask_size)
            assert np.array_equal(got, want), (
                f"image {image_id} {key}: {(got != want).mean():.3%} of pixels differ")
        assert item["ignore_mask"].dtype == torch.bool
        if image_id == 12:
            assert item["instance_mask"].sum() == 0 and not item["ignore_mask"].any()
        else:
            assert item["ignore_mask"].any()  # the fixture's objects overlap
        checked_large_ids |= bool(item["instance_mask"].max() > 255)
    assert checked_large_ids


# --------------------------------------------------------------------------------------
# Panoptic ground truth (panoptic_val2017.json + PNGs, id = R + 256 G + 256^2 B)
# --------------------------------------------------------------------------------------

PANOPTIC_IDS = (5_000_123, 7, 65_536 + 3)  # use every colour channel; listed in this order


def _id_to_rgb(segment_ids):
    ids = np.asarray(segment_ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65_536], axis=-1).astype(np.uint8)


def _write_panoptic(root):
    """Image 1: three segments (the third a crowd) and an unlabelled strip; image 2: one
    segment over everything; image 3: nothing labelled. Returns image 1's expected map."""
    png_dir = root / "annotations" / "panoptic_val2017"
    png_dir.mkdir(parents=True)
    raw1 = np.zeros((H1, W1), dtype=np.int64)
    raw1[:, :20] = PANOPTIC_IDS[0]   # stuff, left half
    raw1[5:25, 20:30] = PANOPTIC_IDS[1]
    raw1[10:20, 30:38] = PANOPTIC_IDS[2]
    expected = np.select([raw1 == i for i in PANOPTIC_IDS], [1, 2, 3], 0)
    entries = []
    for image_id, raw, ids in ((1, raw1, PANOPTIC_IDS), (2, np.full((32, 24), 42), (42,)),
                               (3, np.zeros((30, 30), dtype=np.int64), ())):
        name = f"{image_id:012d}.png"
        Image.fromarray(_id_to_rgb(raw)).save(png_dir / name)
        info = [{"id": int(i), "category_id": 1, "iscrowd": int(i == PANOPTIC_IDS[2])} for i in ids]
        entries.append({"image_id": image_id, "file_name": name, "segments_info": info})
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps({"annotations": entries}))
    return expected


def test_panoptic_reader_decodes_and_renumbers_segments(coco_root):
    from spot_tutorial.data.coco_panoptic import PanopticAnnotations

    expected = _write_panoptic(coco_root)
    truth = PanopticAnnotations(coco_root, "val")[1]
    np.testing.assert_array_equal(truth.segments, expected)
    np.testing.assert_array_equal(truth.crowd, expected == 3)
    assert truth.category_ids == [1, 1, 1]


def test_panoptic_items_are_resized_like_the_instance_masks(coco_root):
    expected = _write_panoptic(coco_root)
    dataset = COCO2017(coco_root, "val", image_size=16, mask_size=30, panoptic=True)
    first = dataset[0]
    assert first["panoptic_mask"].dtype == torch.int64 and first["panoptic_crowd"].dtype == torch.bool
    np.testing.assert_array_equal(first["panoptic_mask"].numpy(), expected[:, CROP:W1 - CROP])
    assert dataset[1]["panoptic_mask"].unique().tolist() == [1]
    assert dataset[2]["panoptic_mask"].unique().tolist() == [0]  # nothing labelled
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["panoptic_mask"].shape == (3, 30, 30)
    assert "panoptic_mask" not in COCO2017(coco_root, "val", image_size=16, mask_size=30)[0]


def test_panoptic_files_that_do_not_fit_are_refused(coco_root):
    from spot_tutorial.data.coco_panoptic import read_panoptic_png
    from spot_tutorial.errors import DatasetError

    with pytest.raises(FileNotFoundError, match="panoptic_val2017.json"):
        COCO2017(coco_root, "val", panoptic=True)
    _write_panoptic(coco_root)
    png = coco_root / "annotations" / "panoptic_val2017" / "000000000001.png"
    with pytest.raises(DatasetError, match="does not list"):
        read_panoptic_png(png, [{"id": 7, "category_id": 1}])
    with pytest.raises(DatasetError, match="panoptic ground truth is for evaluation"):
        COCO2017(coco_root, "train", train=True, panoptic=True)
