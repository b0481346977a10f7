import json
import os
from pathlib import Path

import pytest
import torch

from spot_tutorial import SPOT, get_preset

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _restore_spot_environment():
    """Tests that run a notebook's first cell set SPOT_* variables in this process; put them back,
    so the notebooks that nbval runs later in the same pytest call start as a user's would."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("SPOT_")}
    yield
    for key in [key for key in os.environ if key.startswith("SPOT_") and key not in saved]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture
def one_torch_thread():
    """One torch thread: faster for the tiny model on a small machine, and reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def official_layouts():
    return json.loads((DATA / "official_state_dict_coco.json").read_text())


def tiny_model(**overrides) -> SPOT:
    """The CPU tutorial model (64 px, depth-0 ViT, 8x8 token grid) with config overrides."""
    return SPOT.from_config(get_preset("tiny", **overrides))


BOOK_MODULES = {"test_book.py", "test_notebooks.py"}


def pytest_collection_modifyitems(config, items):
    """The `book` marker for everything that builds the book or executes a notebook: the book
    tests, and the notebooks themselves when nbval collects them (`pytest --nbval`)."""
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" or path.name in BOOK_MODULES:
            item.add_marker(pytest.mark.book)
