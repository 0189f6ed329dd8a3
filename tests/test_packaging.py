"""The install is what the README promises: same dependencies everywhere, torchvision importable,
nothing heavy or network-touching imported at package import time."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"torch", "torchvision", "timm", "faiss-cpu", "numpy", "scipy", "scikit-learn", "scikit-image",
            "pillow", "matplotlib", "seaborn", "pandas", "tqdm", "pyyaml", "papermill", "ipykernel",
            "jupyterlab", "kaggle", "gdown", "six"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()


def test_pyproject_declares_every_required_package():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {_name(d) for d in deps} == REQUIRED
    gdown = next(d for d in deps if _name(d) == "gdown")
    assert ">=6" in gdown and "<7" in gdown


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = sorted(p for p in pip_section if not p.startswith("-e"))
    assert listed == sorted(project["dependencies"])
    assert "-e .[dev]" in pip_section


def test_torchvision_and_friends_import():
    import faiss  # noqa: F401
    import timm  # noqa: F401
    import torchvision

    assert torchvision.transforms is not None


def test_importing_the_package_touches_no_credentials_or_heavy_modules():
    code = ("import sys, fgr_utils, fgr_utils.cli, fgr_utils.runner, fgr_utils.results, fgr_utils.metrics, "
            "fgr_utils.index, fgr_utils.data.registry, fgr_utils.data.download, fgr_utils.data.synth; "
            "print(','.join(m for m in ('kaggle', 'gdown', 'papermill') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "fgr"
    assert exe.exists()
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("list", "run", "reproduce", "results", "data"):
        assert command in out
