"""Downloads for the lessons' full mode, fetched once into a cache folder and checked.

Full mode needs COCO val2017 (5000 images and their instance annotations, about 1 GB: train2017
is never needed) and the authors' released COCO checkpoint (the stage-2 model of their README,
on Google Drive; `gdown` fetches it, ``pip install gdown`` or the package's ``colab`` extra).
DINO ViT-B/16 weights for models trained in the lessons come through timm as usual.

The cache folder is ``$SPOT_DATA`` if set, else ``/content/spot_data`` in Colab, else
``./spot_data``::

    <cache>/COCO2017/val2017/*.jpg
    <cache>/COCO2017/annotations/instances_val2017.json
    <cache>/checkpoints/spot_coco.pt
    <cache>/demo_models/coco_<kind>.pt      models trained by the lessons (see tutorial.py)

`ensure_coco_val` and `ensure_official_checkpoint` return at once when their files are there and
valid; otherwise they download with a progress bar, check the result, and raise `DownloadError`
with what went wrong and what to do when a download fails or a file is truncated or corrupt.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from spot_tutorial.errors import SpotUserError
from spot_tutorial.runtime import in_colab

DATA_ENV = "SPOT_DATA"
COCO_URLS = {
    "val2017.zip": "http://images.cocodataset.org/zips/val2017.zip",
    "annotations_trainval2017.zip": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
}
COCO_ANNOTATION = "annotations/instances_val2017.json"
OFFICIAL_CHECKPOINT_ID = "1LLcJ3zrSlwSVda7p1UQg3NBRbrpeqBg1"  # the authors' README, "Pretrained model"
OFFICIAL_CHECKPOINT_URL = f"https://drive.google.com/file/d/{OFFICIAL_CHECKPOINT_ID}/view"
CHUNK = 1 << 20


class DownloadError(SpotUserError):
    """A download failed, or a downloaded file is missing, truncated or corrupt."""


def data_dir() -> Path:
    """The cache folder: $SPOT_DATA, else /content/spot_data in Colab, else ./spot_data."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path("/content/spot_data") if in_colab() else Path("spot_data")


# ----------------------------------------------------------------------------------------------
# plain HTTP downloads
def download_url(url: str, path: str | os.PathLike, progress: bool = True) -> Path:
    """Download `url` to `path` (via `path`.part, renamed when complete) with a progress bar.

    Raises DownloadError when the connection fails or fewer bytes arrive than announced.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            expected = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=expected, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar:
                received = _copy(response, out, bar)
    except OSError as error:  # URLError, timeouts, connection resets, a full disk
        raise DownloadError(f"downloading {url} failed: {error}. Check the network (and the free disk space "
                            f"in {path.parent}), then run the cell again; or download it yourself to "
                            f"{path}.") from error
    if expected is not None and received != expected:
        raise DownloadError(f"the download of {url} stopped after {received:,} of {expected:,} bytes; "
                            f"{partial} is incomplete. Run the cell again to restart it.")
    partial.replace(path)
    return path


def _copy(source, target, bar) -> int:
    received = 0
    while chunk := source.read(CHUNK):
        target.write(chunk)
        received += len(chunk)
        bar.update(len(chunk))
    return received


def extract(archive: Path, destination: Path, wanted: Callable[[str], bool]) -> int:
    """Extract the members of a zip file for which `wanted(name)` is true; returns their count."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = [name for name in zipped.namelist() if wanted(name)]
            for name in names:
                zipped.extract(name, destination)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise DownloadError(f"{archive} is not a complete zip file ({error}): the download was cut off or "
                            "corrupted. Delete it and run the cell again.") from error
    return len(names)


# ----------------------------------------------------------------------------------------------
# COCO val2017
def coco_val_problem(root: str | os.PathLike) -> str | None:
    """Why `root` is not a complete COCO val2017 folder, or None when it is."""
    root = Path(root)
    annotation = root / COCO_ANNOTATION
    if not annotation.is_file():
        return f"{annotation} is missing"
    try:
        images = json.loads(annotation.read_text())["images"]
    except (ValueError, KeyError, TypeError) as error:
        return f"{annotation} is not a COCO annotation file ({error!r})"
    missing = [image["file_name"] for image in images
               if not (root / "val2017" / image["file_name"]).is_file()]
    if missing:
        return (f"{len(missing)} of {len(images)} images are missing from {root / 'val2017'} "
                f"(e.g. {missing[0]})")
    return None


def ensure_coco_val(root: str | os.PathLike | None = None, progress: bool = True,
                    fetch: Callable[[str, Path], Path] | None = None) -> Path:
    """A complete COCO val2017 folder at `root` (default <cache>/COCO2017), downloaded if needed.

    Downloads val2017.zip (~780 MB) and the annotation zip (~240 MB, of which only
    instances_val2017.json is kept), extracts them, deletes the zips and checks the result.
    `fetch(url, path)` replaces the HTTP download (tests).
    """
    root = Path(root) if root is not None else data_dir() / "COCO2017"
    if coco_val_problem(root) is None:
        return root
    fetch = fetch or (lambda url, path: download_url(url, path, progress))
    wanted = {"val2017.zip": lambda name: name.startswith("val2017/"),
              "annotations_trainval2017.zip": lambda name: name == COCO_ANNOTATION}
    print(f"COCO val2017 is not complete in {root}: downloading it (about 1 GB) ...")
    for name, url in COCO_URLS.items():
        archive = root / "downloads" / name
        if not archive.is_file():
            fetch(url, archive)
        if extract(archive, root, wanted[name]) == 0:
            raise DownloadError(f"{archive} holds none of the expected files: it is not the COCO archive. "
                                "Delete it and run the cell again.")
        archive.unlink()
    shutil.rmtree(root / "downloads", ignore_errors=True)
    problem = coco_val_problem(root)
    if problem is not None:
        raise DownloadError(f"COCO val2017 is still incomplete after the download: {problem}. Delete {root} "
                            "and run the cell again.")
    return root


# ----------------------------------------------------------------------------------------------
# the authors' checkpoint
def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a readable authors' SPOT checkpoint, or None when it is."""
    from spot_tutorial.io.official import _read_official

    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    try:
        _read_official(path)
    except Exception as error:  # truncated zip, pickle errors, not a SPOT file
        return f"{path} cannot be read as the authors' checkpoint ({str(error)[:300]})"
    return None


def gdown_fetch(file_id: str, path: Path) -> Path:
    """Fetch a Google Drive file with gdown (optional dependency) to `path`."""
    try:
        import gdown
    except ImportError as error:
        raise DownloadError("the authors' checkpoint is on Google Drive and needs gdown: pip install gdown "
                            "(or pip install 'spot-tutorial[colab]'), then run the cell again") from error
    path.parent.mkdir(parents=True, exist_ok=True)
    result = gdown.download(id=file_id, output=str(path), quiet=False)
    if result is None or not path.is_file():
        raise DownloadError(
            f"Google Drive did not hand out the checkpoint (network, or the file's daily download quota). "
            f"Download it in a browser from {OFFICIAL_CHECKPOINT_URL}, put it at {path} and run the cell "
            "again.")
    return path


def ensure_official_checkpoint(path: str | os.PathLike | None = None,
                               fetch: Callable[[str, Path], Path] = gdown_fetch) -> Path:
    """The authors' COCO checkpoint at `path` (default <cache>/checkpoints/spot_coco.pt), downloaded
    with `fetch(file_id, path)` if missing; a corrupt file is deleted and fetched again once."""
    path = Path(path) if path is not None else data_dir() / "checkpoints" / "spot_coco.pt"
    problem = checkpoint_problem(path)
    if problem is None:
        return path
    if path.exists():
        print(f"{problem}: deleting it and downloading it again")
        path.unlink()
    print(f"downloading the authors' COCO checkpoint ({OFFICIAL_CHECKPOINT_URL}) to {path} ...")
    fetch(OFFICIAL_CHECKPOINT_ID, path)
    problem = checkpoint_problem(path)
    if problem is not None:
        raise DownloadError(f"the downloaded checkpoint is not usable: {problem}. Delete it and run the cell "
                            f"again, or download it in a browser from {OFFICIAL_CHECKPOINT_URL} to {path}.")
    return path
