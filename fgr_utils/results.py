"""The run record: what a notebook execution writes (:class:`Run`) and how a finished run is read
back (:class:`RunRecord`), by every consumer of a run folder.

A notebook opens its record in its second cell and closes it in its last::

    run = start_run("10_fabric_global", globals())   # reads the declared parameters by name
    run.log("stage1/map", 0.61, protocol="full-ranking AP", dataset="sim-fabrics", split="test")
    run.save_figure(fig, "retrieval-grid")
    run.finish()                                        # writes metrics.json atomically

Every metric carries its protocol, dataset and split (the report never mixes protocols in one
table). Values with ``unit="fraction"`` must lie in [0, 1]; the report shows them as percentages.

A finished run is opened with ``RunRecord.find(name, profile)`` (or ``RunRecord.open(folder)``): it
answers which parameters the run used (:attr:`RunRecord.params`), which checkpoint of which stage
(:meth:`RunRecord.checkpoint`) and which upstream run it read (:meth:`RunRecord.upstream`, recorded
when the notebook called :meth:`Run.upstream`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import re
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from fgr_utils import io, queries
from fgr_utils.checkpoints import load_checkpoint
from fgr_utils.distributed import distributed, init_distributed
from fgr_utils.errors import FgrError
from fgr_utils.paths import project_root, runs_dir
from fgr_utils.runner import (INTERACTIVE, LATEST, PROFILE_PARAM, check_value, find_notebook, list_profiles,
                              remake_hint)

UNITS = ("fraction", "count", "seconds", "ratio", "value")
_VERSIONED = ("torch", "torchvision", "timm", "faiss-cpu", "numpy", "scipy", "scikit-learn", "scikit-image",
              "pillow", "papermill", "fgr")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(device: str = "cpu") -> str:
    """'auto' picks CUDA when present; 'cuda' without a GPU falls back to CPU (and says so)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"fgr: device {device!r} requested but no GPU is visible; running on cpu")
        return "cpu"
    return device


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state() -> dict[str, Any]:
    root = project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit or None, "git_dirty": bool(dirty) if commit else None}


@dataclass
class Run:
    """The record of one notebook execution."""

    notebook: str
    name: str
    profile: str
    dir: Path
    params: dict[str, Any]
    seed: int
    device: str
    metrics: dict[str, float] = field(default_factory=dict)
    metric_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    skipped_images: list[dict[str, str]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _t0: float = field(default_factory=time.perf_counter)
    finished: bool = False
    rank: int = 0  # under torchrun: this process's rank; only rank 0 writes metrics.json and figures
    world_size: int = 1
    upstreams: dict[str, str] = field(default_factory=dict)  # role -> folder of a finished run this one read
    reads: str = ""  # the profile whose runs :meth:`upstream` looks names up in ("": this run's own profile)
    tables: dict[str, queries.QueryTable] = field(default_factory=dict)  # per-query values kept (log_queries)
    seed_suffix: str = ""  # a run of another seed (`fgr reproduce --seeds`): upstream names get this suffix

    @property
    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: under the runner, its fingerprint (parameters,
        notebook, package code, upstream runs); in JupyterLab, a hash of the parameters."""
        if os.environ.get("FGR_NOTEBOOK") == self.notebook and os.environ.get("FGR_FINGERPRINT"):
            return os.environ["FGR_FINGERPRINT"]
        return hashlib.sha256(json.dumps(self.params, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def figures_dir(self) -> Path:
        return self.dir / "figures"

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (checkpoints, caches, indexes); parent folders are made."""
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def log(self, name: str, value: float, *, protocol: str, dataset: str | None = None,
            split: str | None = None, unit: str = "fraction", per_query: queries.QueryRef | None = None) -> float:
        """Record one metric with the protocol it was measured under; ``per_query`` names the kept
        per-query values it is computed from (:meth:`log_queries`), and must agree with them."""
        if unit not in UNITS:
            raise FgrError(f"metric {name!r}: unit must be one of {', '.join(UNITS)}, not {unit!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise FgrError(f"metric {name!r} must be a number, got {value!r}") from None
        if not math.isfinite(value):
            raise FgrError(f"metric {name!r} is {value}: a metric must be finite (check for empty query sets)")
        if unit == "fraction" and not 0.0 <= value <= 1.0:
            raise FgrError(f"metric {name!r} = {value} is not a fraction in [0, 1] (log percentages as fractions)")
        if per_query is not None:
            self._check_per_query(name, value, per_query)
        self.metrics[name] = value
        info: dict[str, Any] = {"protocol": protocol, "unit": unit}
        if dataset is not None:
            info["dataset"] = dataset
        if split is not None:
            info["split"] = split
        if per_query is not None:
            info["per_query"] = per_query.as_dict()
        self.metric_info[name] = info
        return value

    def _check_per_query(self, name: str, value: float, ref: queries.QueryRef) -> None:
        if ref.table not in self.tables:
            raise FgrError(f"metric {name!r} names per-query table {ref.table!r}, which this run has not kept "
                           f"(log_queries first; kept: {', '.join(self.tables) or 'none'})")
        expected = self.tables[ref.table].statistic(ref)
        if not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12):
            raise FgrError(f"metric {name!r} = {value!r} is not the {ref.stat} of per-query column "
                           f"{ref.table}/{ref.column} ({expected!r}): log the value the queries give")

    def log_queries(self, table: str, ids, values: dict[str, Any], *, groups=None, prefix: str | None = None,
                    protocol: str | Any = None, metrics: list[str] | None = None, **info: Any) -> dict[str, float]:
        """Keep per-query values as ``per_query/<table>.csv`` (see :mod:`fgr_utils.queries`): one row
        per query id (within its group), one column per entry of ``values``.

        With ``prefix`` (and ``protocol``: a text, or a function of the column name) the mean of each
        column (of those named in ``metrics``, default all) is also logged as the metric
        ``<prefix><column>``, linked to its values; ``info`` goes to :meth:`log`. Returns the means."""
        t = queries.QueryTable(list(ids), values, None if groups is None else list(groups))
        if self.rank == 0:
            t.write(self.path(queries.FOLDER, f"{queries.check_name(table)}.csv"))
        self.tables[table] = t
        means = {}
        for column in t.columns:
            ref = queries.QueryRef(table, column)
            means[column] = t.statistic(ref)
            if prefix is not None and (metrics is None or column in metrics):
                how = protocol(column) if callable(protocol) else protocol
                self.log(f"{prefix}{column}", means[column], protocol=how, per_query=ref, **info)
        return means

    def log_many(self, values: dict[str, float], *, prefix: str = "", **info: Any) -> None:
        for key, value in values.items():
            self.log(f"{prefix}{key}", value, **info)

    def use_dataset(self, name: str, **info: Any) -> None:
        """Record a dataset the run read (root, split, counts, preprocessing...)."""
        self.datasets[name] = {k: (str(v) if isinstance(v, Path) else v) for k, v in info.items()}

    def read(self, loaded: Any, **info: Any) -> None:
        """Record a dataset a track's ``load_dataset`` returned (a :class:`fgr_utils.data.reader.Dataset`):
        its name and folder with ``info``, and the unreadable images it left out."""
        self.skip_images(loaded.skipped)
        self.use_dataset(loaded.name, root=loaded.root, **info)

    def note(self, key: str, value: Any) -> None:
        """Record a setting next to the numbers (preprocessing, switches, shortlist size...)."""
        self.notes[key] = value

    def upstream(self, name: str, role: str | None = None) -> RunRecord:
        """The finished run ``name``, which this run reads (e.g. the stage-1 run a re-ranker builds on):
        a run name of the profile this run reads (:attr:`reads`), ``<profile>/<run>`` (by-hand runs:
        ``interactive/<notebook>``) or a run folder. Recorded under ``role`` (default: the name) in
        metrics.json's ``upstream``. A run of another seed (``fgr reproduce --seeds N``) reads the run
        of its own seed, ``<name>+seed=<k>``."""
        if self.seed_suffix and "/" not in name and not Path(name).is_dir():
            name += self.seed_suffix if "+" not in name else "," + self.seed_suffix[1:]
        found = RunRecord.find(name, self.reads or self.profile)
        self.upstreams[role or name] = str(found.dir)
        return found

    def skip_images(self, skipped: list[tuple[Any, str]]) -> None:
        """Record image files left out as corrupt (path, reason)."""
        self.skipped_images.extend({"path": str(p), "reason": r} for p, r in skipped)

    def save_figure(self, fig, name: str, *, dpi: int = 110) -> Path:
        """Save ``fig`` as ``figures/<name>.png`` in the run folder (atomically; rank 0 only); characters
        a file name or a markdown link cannot carry (spaces, slashes, brackets) become ``-``."""
        dest = self.figures_dir / f"{re.sub(r'[^A-Za-z0-9_.+=,-]+', '-', name).strip('-')}.png"
        if self.rank == 0:
            with io.atomic_path(dest, suffix=".png") as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        rel = str(dest.relative_to(self.dir))
        if rel not in self.figures:
            self.figures.append(rel)
        return dest

    def record(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "run": self.name,
            "profile": self.profile,
            "metrics": dict(sorted(self.metrics.items())),
            "metric_info": dict(sorted(self.metric_info.items())),
            "datasets": self.datasets,
            "params": self.params,
            "seed": self.seed,
            "device": self.device,
            "notes": self.notes,
            "skipped_images": self.skipped_images,
            "figures": self.figures,
            **({"upstream": self.upstreams} if self.upstreams else {}),
            **({"reads": self.reads} if self.reads else {}),
            "versions": package_versions(),
            **git_state(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(time.perf_counter() - self._t0, 3),
            **({"processes": self.world_size} if self.world_size > 1 else {}),
        }

    def finish(self) -> dict[str, Any]:
        """Write ``metrics.json``; returns what was written (another rank than 0 writes nothing)."""
        rec = self.record()
        if self.rank != 0:
            self.finished = True
            print(f"run {self.name}: rank {self.rank} of {self.world_size}; rank 0 writes metrics.json")
            return rec
        io.write_json(self.dir / "metrics.json", rec)
        self.finished = True
        print(f"run {self.name}: {len(self.metrics)} metrics, {len(self.figures)} figures -> {self.dir}")
        return rec


def start_run(notebook: str, namespace: dict[str, Any] | None = None, *, seed_key: str = "seed",
              device_key: str = "device") -> Run:
    """Open the record of ``notebook``; pass ``globals()`` so the declared parameters are recorded.

    Under ``fgr run`` / ``fgr reproduce`` the run folder comes from the runner and the notebook reads
    the runs of the profile it runs. Run by hand (JupyterLab, papermill, nbconvert) it records into
    ``runs/interactive/<notebook>/`` and reads the runs of its ``profile`` parameter, where ``latest``
    is the profile of the last ``fgr reproduce``. Its first output line says both. Seeds every RNG
    from the ``seed`` parameter.

    Under torchrun (``python -m fgr_utils.train``) every process joins the process group here; on CUDA
    each takes its own GPU (``cuda:LOCAL_RANK``). All share the run folder (checkpoints are resumed
    from it), but only rank 0 writes ``metrics.json`` and figures.
    """
    namespace = namespace or {}
    declared = find_notebook(notebook).params
    params = {k: namespace[k] for k in declared if k in namespace}
    under_runner = os.environ.get("FGR_NOTEBOOK") == notebook and bool(os.environ.get("FGR_RUN_DIR"))
    if not under_runner:  # the runner has checked them; by hand, papermill's -p passes text as text
        params = {k: check_value(declared[k], v, "the parameters cell (papermill: -p gives text; "
                                 "give lists and dicts with -y 'name: [...]')") for k, v in params.items()}
    if under_runner:
        run_dir = Path(os.environ["FGR_RUN_DIR"])
        profile = os.environ.get("FGR_PROFILE", "interactive")
        name = os.environ.get("FGR_RUN_NAME", notebook)
        reads = profile
        seed_suffix = os.environ.get("FGR_SEED_SUFFIX", "")
    else:
        profile, name, seed_suffix = INTERACTIVE, notebook, ""
        run_dir = runs_dir() / profile / name
        reads = reading_profile(str(params.get(PROFILE_PARAM, LATEST))) if PROFILE_PARAM in params else ""
    run_dir.mkdir(parents=True, exist_ok=True)
    print(_opening_line(notebook, name, profile, reads, run_dir))
    seed = int(params.get(seed_key, 0))
    seed_everything(seed)
    device = resolve_device(str(params.get(device_key, "cpu")))
    rank, world = distributed()
    if world > 1:
        device = init_distributed(device)
    return Run(notebook=notebook, name=name, profile=profile, dir=run_dir, params=params, seed=seed, device=device,
               rank=rank, world_size=world, reads=reads, seed_suffix=seed_suffix)


def _opening_line(notebook: str, name: str, profile: str, reads: str, run_dir: Path) -> str:
    if profile != INTERACTIVE:
        return f"run {name} of profile {profile}: records into {run_dir}"
    line = f"{notebook}, run by hand: records into {run_dir}"
    if reads:
        line += (f"; reads the runs of profile {reads!r} ({runs_dir() / reads}; set `{PROFILE_PARAM}` in the "
                 f"parameters cell to read another)")
    return line


def reading_profile(profile: str) -> str:
    """The profile a notebook run by hand reads: ``profile``, or for ``latest`` the one whose
    ``fgr reproduce`` finished last (else whose run finished last)."""
    known = list(list_profiles())
    if profile != LATEST:
        if profile not in (*known, INTERACTIVE):
            raise FgrError(f"profile {profile!r} (the notebook's `{PROFILE_PARAM}` parameter) is not one of "
                           f"{', '.join((LATEST, *known, INTERACTIVE))}")
        return profile
    base = runs_dir()
    for marker in ("reproduce.json", "*/metrics.json"):
        done = [(p.stat().st_mtime, name) for name in known for p in (base / name).glob(marker)]
        if done:
            return max(done)[1]
    raise FgrError(f"no finished runs of any profile in {base}: run `fgr reproduce --profile demo` first, "
                   f"or set `{PROFILE_PARAM}` in the parameters cell")


def current_profile() -> str:
    return os.environ.get("FGR_PROFILE", INTERACTIVE)


CHECKPOINTS = ("best", "last")


@dataclass(frozen=True)
class RunRecord:
    """A finished run: its folder and what its ``metrics.json`` says. Every reader of a run folder
    (the evaluation notebooks, ``fgr serve``, ``fgr bench``, the tracks' loaders) goes through it."""

    dir: Path
    record: dict[str, Any]

    @classmethod
    def open(cls, run_dir: str | os.PathLike) -> RunRecord:
        """The run in folder ``run_dir``; one line when it has not finished or cannot be read."""
        run_dir = Path(run_dir)
        path = run_dir / "metrics.json"
        if not path.is_file():
            raise FgrError(f"{run_dir} is not a finished run (no metrics.json): give a run folder such as "
                           f"runs/demo/30_asfr_train-asen_v2")
        return cls(run_dir, _read_record(run_dir))

    @classmethod
    def find(cls, name: str | os.PathLike, profile: str | None = None) -> RunRecord:
        """The finished run ``name`` of ``profile`` (default: the profile this process runs under),
        ``<profile>/<run>``, or a run folder (e.g. ``runs/demo/30_asfr_train-asen_v2``)."""
        run_dir = _find_run(str(name), profile)
        return cls(run_dir, _read_record(run_dir))

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def notebook(self) -> str:
        return str(self.record.get("notebook", ""))

    @property
    def profile(self) -> str:
        return str(self.record.get("profile", self.dir.parent.name))

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the run used (a copy)."""
        return dict(self.record.get("params", {}))

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.record.get("metrics", {}))

    def per_query(self, metric: str) -> tuple[queries.QueryTable, queries.QueryRef]:
        """The kept per-query values ``metric`` was computed from: the table and where in it."""
        info = self.record.get("metric_info", {}).get(metric)
        if info is None:
            raise FgrError(f"run {self.name} logged no metric {metric!r} (it has {io.few(sorted(self.metrics))})")
        if "per_query" not in info:
            raise FgrError(f"run {self.name} kept no per-query values for {metric!r} (a run made before they "
                           f"were kept): make it again; {remake_hint(self.name, self.profile)}")
        ref = queries.QueryRef.from_dict(info["per_query"])
        return queries.load(self.dir, ref), ref

    def checkpoint_path(self, stage: str = "", which: str = "best") -> Path:
        """``checkpoints/[<stage>/]<which>.pt``: the epoch its selection metric chose (``best``) or the
        last epoch trained (``last``), of stage ``stage`` (RPF: ``s1``, ``s2``; one-stage runs: "")."""
        if which not in CHECKPOINTS:
            raise FgrError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {which!r}")
        return self.dir / "checkpoints" / stage / f"{which}.pt"

    def checkpoint(self, stage: str = "", which: str = "best") -> dict[str, Any]:
        """The saved checkpoint (its ``model`` state dict, epoch, ...); one line when it is missing or torn."""
        path = self.checkpoint_path(stage, which)
        state = load_checkpoint(path)
        if state is None:
            raise FgrError(f"no readable checkpoint {path} of run {self.name}: make it again; "
                           f"{remake_hint(self.name, self.profile)}")
        return state

    def upstream(self, role: str) -> RunRecord:
        """The finished run this one read as ``role`` (see :meth:`Run.upstream`)."""
        recorded = self.record.get("upstream", {})
        if role not in recorded:
            raise FgrError(f"run {self.name} records no upstream run {role!r} (it read: "
                           f"{', '.join(recorded) or 'none'}): run {self.notebook} again")
        return RunRecord.open(recorded[role])


def run_labels(runs: dict[str, RunRecord], param: str) -> dict[str, str]:
    """A short label per run for tables and figures: its parameter ``param`` (e.g. the method), with
    the run's profile and name added where two runs share it (a run retrained by hand beside the
    profile's)."""
    values = [rec.params.get(param) for rec in runs.values()]
    return {given: (str(rec.params.get(param)) if values.count(rec.params.get(param)) == 1
                    else f"{rec.params.get(param)} ({rec.profile} {rec.name})") for given, rec in runs.items()}


def _find_run(name: str, profile: str | None = None) -> Path:
    """The folder of a finished run: ``name`` of ``profile`` (default: the one this process runs
    under), ``<profile>/<run>``, or a run folder."""
    given = Path(name)
    if given.is_absolute() or given.is_dir():
        return RunRecord.open(given).dir
    profile = profile or current_profile()
    if "/" in name:
        profile, name = name.split("/", 1)
    d = runs_dir() / profile / name
    if not (d / "metrics.json").exists():
        raise FgrError(f"run {name!r} of profile {profile} has not finished (no {d / 'metrics.json'}): "
                       f"{remake_hint(name, profile)}")
    return d


def _read_record(run_dir: Path) -> dict[str, Any]:
    """The metrics.json of a finished run."""
    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise FgrError(f"cannot read {path}: run that notebook again") from None


# --------------------------------------------------------------------------------------------
# Collecting and reporting
# --------------------------------------------------------------------------------------------

def load_records(profile: str) -> list[dict[str, Any]]:
    base = runs_dir() / profile
    out = []
    for path in sorted(base.glob("*/metrics.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: (r.get("notebook", ""), r.get("run", "")))


def results(profile: str) -> list[dict[str, Any]]:
    """The ``fgr results --json`` view: run, notebook, params, flat metrics, seconds."""
    return [{"run": r["run"], "notebook": r["notebook"], "params": r.get("params", {}),
             "metrics": r.get("metrics", {}), "seconds": r.get("seconds")} for r in load_records(profile)]


def matching_metrics(record: dict[str, Any], metric: str) -> list[tuple[str, str]]:
    """(dataset, name) of every metric of ``record`` named ``metric``, or ``<dataset>/<metric>`` where
    ``<dataset>`` is the dataset the metric was recorded for (not ``s1/map/weighted`` for ``map/weighted``)."""
    out = []
    info = record.get("metric_info", {})
    for name in record.get("metrics", {}):
        dataset = info.get(name, {}).get("dataset", "")
        if name == metric or (dataset and name == f"{dataset}/{metric}"):
            out.append((dataset, name))
    return out


def format_value(value: float, unit: str) -> str:
    if unit == "fraction":
        return f"{100 * value:.2f} %"
    if unit == "count":
        return f"{int(round(value)):,}"
    if unit == "seconds":
        return f"{value:.2f} s"
    if unit == "ratio":
        return f"{value:.1f}x"
    return f"{value:.4g}"
