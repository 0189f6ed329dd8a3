"""Where the kit keeps things: the project root, datasets, runs.

``FGR_HOME`` overrides the project root (default: the checkout that holds this package),
``FGR_DATA_DIR`` the dataset folder (default ``<root>/data``) and ``FGR_RUNS_DIR`` the run folder
(default ``<root>/runs``).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    env = os.environ.get("FGR_HOME")
    if env:
        return Path(env).resolve()
    candidate = PACKAGE_DIR.parent
    if (candidate / "notebooks").is_dir():
        return candidate
    return Path.cwd().resolve()


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def params_dir() -> Path:
    return project_root() / "params"


def data_dir() -> Path:
    env = os.environ.get("FGR_DATA_DIR")
    return Path(env).resolve() if env else project_root() / "data"


def runs_dir() -> Path:
    env = os.environ.get("FGR_RUNS_DIR")
    return Path(env).resolve() if env else project_root() / "runs"
