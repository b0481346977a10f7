"""The full-mode downloader, without a network: a pre-filled cache is used as is; downloads are
replaced by local files (zips of a generated COCO folder, a tiny checkpoint in the authors' format);
a failed, truncated or corrupt download gives a message that says what to do."""

from __future__ import annotations

import io
import sys
import urllib.error
import zipfile
from pathlib import Path

import pytest
from fakes import write_coco_val, write_official_checkpoint

from spot_tutorial.io import downloads
from spot_tutorial.io.downloads import DownloadError


def refuse(*args, **kwargs):
    raise AssertionError("a download was attempted although the cache is filled")


def zipped_coco(source: Path, target_dir: Path) -> dict[str, Path]:
    """The two COCO archives, as served by cocodataset.org, built from a generated folder."""
    archives = {"val2017.zip": target_dir / "val2017.zip",
                "annotations_trainval2017.zip": target_dir / "annotations.zip"}
    with zipfile.ZipFile(archives["val2017.zip"], "w") as zipped:
        for image in sorted((source / "val2017").iterdir()):
            zipped.write(image, f"val2017/{image.name}")
    with zipfile.ZipFile(archives["annotations_trainval2017.zip"], "w") as zipped:
        zipped.write(source / downloads.COCO_ANNOTATION, downloads.COCO_ANNOTATION)
        zipped.writestr("annotations/captions_val2017.json", "{}")   # not kept
    return archives


def test_cache_folder_follows_spot_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SPOT_DATA", str(tmp_path))
    assert downloads.data_dir() == tmp_path
    monkeypatch.delenv("SPOT_DATA")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert downloads.data_dir() == Path("spot_data")
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert downloads.data_dir() == Path("/content/spot_data")
    from spot_tutorial.runtime import in_colab
    assert downloads.in_colab is in_colab   # the one Colab check of the library


def test_prefilled_cache_is_used_without_downloading(tmp_path):
    root = write_coco_val(tmp_path / "COCO2017", 3)
    assert downloads.ensure_coco_val(root, fetch=refuse) == root
    path = write_official_checkpoint(tmp_path / "checkpoints" / "spot_coco.pt")
    assert downloads.ensure_official_checkpoint(path, fetch=refuse) == path


def test_coco_val_is_downloaded_extracted_and_checked(tmp_path):
    archives = zipped_coco(write_coco_val(tmp_path / "source", 3), tmp_path)
    fetched = []

    def fetch(url, path):
        fetched.append(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(archives[Path(url).name].read_bytes())
        return path

    root = downloads.ensure_coco_val(tmp_path / "cache" / "COCO2017", fetch=fetch)
    assert sorted(fetched) == sorted(downloads.COCO_URLS.values())
    assert downloads.coco_val_problem(root) is None
    assert not (root / "downloads").exists() and not (root / "annotations" / "captions_val2017.json").exists()


def test_truncated_coco_zip_gives_a_clear_message(tmp_path):
    archives = zipped_coco(write_coco_val(tmp_path / "source", 3), tmp_path)

    def fetch_truncated(url, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(archives[Path(url).name].read_bytes()[:200])
        return path

    with pytest.raises(DownloadError, match="not a complete zip file.*Delete it and run the cell again"):
        downloads.ensure_coco_val(tmp_path / "cache", fetch=fetch_truncated)


def test_missing_images_are_reported(tmp_path):
    root = write_coco_val(tmp_path / "COCO2017", 3)
    (root / "val2017" / "000000000002.jpg").unlink()
    assert "1 of 3 images are missing" in downloads.coco_val_problem(root)


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, announced: int):
        super().__init__(body)
        self.headers = {"Content-Length": str(announced)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_http_download_writes_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(downloads.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(b"x" * 3000, 3000))
    path = downloads.download_url("http://example.invalid/a.zip", tmp_path / "a.zip", progress=False)
    assert path.read_bytes() == b"x" * 3000 and not (tmp_path / "a.zip.part").exists()


def test_interrupted_http_download_gives_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(downloads.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(b"x" * 10, 1000))
    with pytest.raises(DownloadError, match="stopped after 10 of 1,000 bytes.*Run the cell again"):
        downloads.download_url("http://example.invalid/a.zip", tmp_path / "a.zip", progress=False)
    assert not (tmp_path / "a.zip").exists()


def test_failed_connection_gives_a_clear_message(monkeypatch, tmp_path):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError, match="failed: .*no network.*Check the network"):
        downloads.download_url("http://example.invalid/a.zip", tmp_path / "a.zip", progress=False)


def test_checkpoint_is_fetched_when_missing(tmp_path):
    calls = []

    def fetch(file_id, path):
        calls.append(file_id)
        return write_official_checkpoint(path)

    path = downloads.ensure_official_checkpoint(tmp_path / "spot_coco.pt", fetch=fetch)
    assert calls == [downloads.OFFICIAL_CHECKPOINT_ID] and downloads.checkpoint_problem(path) is None


def test_truncated_checkpoint_gives_a_clear_message(tmp_path):
    good = write_official_checkpoint(tmp_path / "good.pt").read_bytes()

    def fetch_truncated(file_id, path):
        path.write_bytes(good[: len(good) // 2])
        return path

    target = tmp_path / "spot_coco.pt"
    target.write_bytes(good[:100])      # a corrupt earlier download: deleted and fetched again
    with pytest.raises(DownloadError, match="not usable.*cannot be read.*download it in a browser"):
        downloads.ensure_official_checkpoint(target, fetch=fetch_truncated)


def test_missing_gdown_is_explained(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gdown", None)
    with pytest.raises(DownloadError, match="pip install gdown"):
        downloads.gdown_fetch(downloads.OFFICIAL_CHECKPOINT_ID, tmp_path / "spot_coco.pt")
