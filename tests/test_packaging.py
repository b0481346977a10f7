"""The package metadata ships what exists: every package-data pattern names real files."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_package_data_patterns_match_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = project.get("tool", {}).get("setuptools", {}).get("package-data", {})
    for package, patterns in package_data.items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), (
                f"pyproject ships {package}/{pattern}, which matches no file")


def test_no_module_points_at_internal_notes():
    """Docstrings cite the paper's sections, not notes that are not part of the repository."""
    for path in [*(ROOT / "spot_tutorial").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        if path.name == "test_packaging.py":
            continue
        assert "SPOT" + ".md" not in path.read_text(), f"{path.relative_to(ROOT)} cites SPOT" + ".md"
