"""Execute notebooks through papermill: profiles, parameter validation, run folders, up-to-date checks.

A notebook declares its parameters in the cell tagged ``parameters`` as typed literals with a
comment each (``epochs: int = 3  # passes over the training triplets``) and its place in the kit in
its metadata (``metadata.fgr = {"track": ..., "purpose": ..., "after": [...]}``).

Effective parameters = notebook defaults, overridden by ``params/<profile>/<stem>.yaml``, overridden
by ``-p key=value``. A profile file may also hold ``runs: {variant: {overrides}}`` to run one
notebook several times (``<stem>-<variant>``). Each run executes into
``runs/<profile>/<run>/<stem>.ipynb`` beside its ``run.json`` (what was asked and the code
fingerprint) and the ``metrics.json`` the notebook writes itself (``fgr_utils.results``).
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import io as _io
import json
import logging
import os
import re
import sys
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from fgr_utils import io
from fgr_utils.errors import FgrError
from fgr_utils.paths import PACKAGE_DIR, notebooks_dir, params_dir, runs_dir

KERNEL_NAME = "fgr"
RESERVED_KEYS = ("runs",)
#: the parameter the runner sets to the profile it runs (a notebook that reads other runs declares it)
PROFILE_PARAM = "profile"
#: where notebooks run by hand (JupyterLab, papermill, nbconvert) keep their records: ``runs/interactive/``
INTERACTIVE = "interactive"
#: ``profile: str = "latest"`` in a notebook run by hand: the profile of the last ``fgr reproduce``
LATEST = "latest"
PROFILE_META = "_profile.yaml"
TRACK_ORDER = ("core", "fabric", "sbir", "asfr", "search", "report")


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One declared notebook parameter."""

    name: str
    type: str  # "int", "float", "str", "bool", "list", "dict", or "list[<scalar>]"
    default: Any
    comment: str
    optional: bool = False  # ``T | None``

    @property
    def type_text(self) -> str:
        return self.type + (" | None" if self.optional else "")


_SCALARS = {"int", "float", "str", "bool"}
_CONTAINERS = {"list", "dict"}


def _annotation_type(node: ast.expr, where: str) -> tuple[str, bool]:
    """Turn an annotation into (type, optional); refuse anything outside the small typed subset."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        others = [s for s in sides if s not in nones]
        if len(nones) == 1 and len(others) == 1:
            t, _ = _annotation_type(others[0], where)
            return t, True
    if isinstance(node, ast.Name) and node.id in _SCALARS | _CONTAINERS:
        return node.id, False
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "list"
            and isinstance(node.slice, ast.Name) and node.slice.id in _SCALARS):
        return f"list[{node.slice.id}]", False
    raise FgrError(f"{where}: annotation {ast.unparse(node)!r} is not one of int, float, str, bool, list, "
                   "list[<scalar>], dict (optionally '| None')")


def _line_comments(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    with contextlib.suppress(tokenize.TokenError, IndentationError):
        for tok in tokenize.generate_tokens(_io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    return comments


def parse_parameters(source: str, where: str = "parameters cell") -> dict[str, Param]:
    """Parse a parameters cell: one ``name: type = literal  # comment`` per statement."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise FgrError(f"{where}: not valid Python ({e.msg}, line {e.lineno})") from None
    comments = _line_comments(source)
    params: dict[str, Param] = {}
    for stmt in tree.body:
        line = f"{where} line {stmt.lineno}"
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None):
            raise FgrError(f"{line}: only 'name: type = literal  # comment' statements are allowed")
        name = stmt.target.id
        if name in RESERVED_KEYS:
            raise FgrError(f"{line}: {name!r} is reserved for profile files; rename the parameter")
        typ, optional = _annotation_type(stmt.annotation, line)
        try:
            default = ast.literal_eval(stmt.value)
        except ValueError:
            raise FgrError(f"{line}: the default of {name!r} must be a literal, not {ast.unparse(stmt.value)!r}") from None
        comment = comments.get(stmt.end_lineno or stmt.lineno, "")
        if not comment:
            raise FgrError(f"{line}: parameter {name!r} needs a comment saying what it does")
        p = Param(name, typ, default, comment, optional)
        params[name] = Param(name, typ, check_value(p, default, f"{where} default"), comment, optional)
    return params


def _type_ok(typ: str, value: Any) -> tuple[bool, Any]:
    if typ == "bool":
        return isinstance(value, bool), value
    if typ == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if typ == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if typ == "str":
        return isinstance(value, str), value
    if typ == "dict":
        return isinstance(value, dict), value
    if typ == "list":
        return isinstance(value, list), value
    if typ.startswith("list["):
        inner = typ[5:-1]
        if not isinstance(value, list):
            return False, value
        out = []
        for v in value:
            ok, v2 = _type_ok(inner, v)
            if not ok:
                return False, value
            out.append(v2)
        return True, out
    raise AssertionError(typ)


def check_value(param: Param, value: Any, source: str) -> Any:
    """Return ``value`` (floats widened from ints) or raise naming the key, the type and the source."""
    if value is None and param.optional:
        return None
    ok, out = _type_ok(param.type, value)
    if not ok:
        raise FgrError(f"parameter {param.name!r} must be {param.type_text}, got {value!r} "
                       f"({type(value).__name__}) from {source}; give one like its default, "
                       f"{param.name}={param.default!r} ({param.comment})")
    return out


def parse_cli_value(param: Param, text: str) -> Any:
    """Parse ``-p key=value`` text by the declared type (YAML for non-strings)."""
    if param.type == "str":
        return None if (param.optional and text in ("None", "null", "~")) else text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise FgrError(f"parameter {param.name!r}: cannot read {text!r} as {param.type_text}") from None
    if param.type.startswith("list") and isinstance(value, str):
        value = [value]
    return value


# --------------------------------------------------------------------------------------------
# Notebooks and profiles
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotebookInfo:
    stem: str
    path: Path
    track: str
    purpose: str
    after: tuple[str, ...]
    params: dict[str, Param]
    source_hash: str
    per_seed: bool = False  # metadata fgr.per_seed: `fgr reproduce --seeds N` runs it once per model seed

    def allowed(self) -> str:
        return ", ".join(sorted(self.params)) or "(none)"


def _read_notebook(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FgrError(f"cannot read notebook {path}: {e}") from None


def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def load_notebook(path: Path) -> NotebookInfo:
    nb = _read_notebook(path)
    stem = path.stem
    cells = nb.get("cells", [])
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise FgrError(f"notebook {stem} must have exactly one cell tagged 'parameters' (found {len(tagged)})")
    params = parse_parameters(_cell_source(tagged[0]), f"{stem} parameters")
    meta = nb.get("metadata", {}).get("fgr", {})
    digest = hashlib.sha256()
    for c in cells:
        digest.update(c.get("cell_type", "").encode())
        digest.update(_cell_source(c).encode())
    return NotebookInfo(
        stem=stem,
        path=path,
        track=meta.get("track", "core"),
        purpose=meta.get("purpose", ""),
        after=tuple(meta.get("after", ())),
        params=params,
        source_hash=digest.hexdigest(),
        per_seed=bool(meta.get("per_seed", False)) and "seed" in params,
    )


def list_notebooks() -> list[NotebookInfo]:
    return [load_notebook(p) for p in sorted(notebooks_dir().glob("*.ipynb"))]


def find_notebook(name: str) -> NotebookInfo:
    stem = Path(name).name
    stem = stem[:-6] if stem.endswith(".ipynb") else stem
    path = notebooks_dir() / f"{stem}.ipynb"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(notebooks_dir().glob("*.ipynb")))
        raise FgrError(f"no notebook {stem!r} in {notebooks_dir()}; known: {known}")
    return load_notebook(path)


def list_profiles() -> dict[str, str]:
    """Profile name -> one-line description."""
    out = {}
    known = ("smoke", "demo", "paper")
    dirs = [p for p in params_dir().iterdir() if p.is_dir()] if params_dir().is_dir() else []
    for d in sorted(dirs, key=lambda p: (known.index(p.name) if p.name in known else len(known), p.name)):
        meta = d / PROFILE_META
        desc = ""
        if meta.exists():
            desc = (yaml.safe_load(meta.read_text()) or {}).get("description", "")
        out[d.name] = desc
    return out


def check_profile(profile: str) -> None:
    profiles = list_profiles()
    if profile not in profiles:
        raise FgrError(f"unknown profile {profile!r}; known: {', '.join(profiles) or '(none)'}")


def _profile_file(profile: str, stem: str) -> dict:
    path = params_dir() / profile / f"{stem}.yaml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise FgrError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FgrError(f"{path} must be a mapping of parameter names to values")
    return data


def _validate(nb: NotebookInfo, overrides: dict, source: str) -> dict:
    out = {}
    for key, value in overrides.items():
        if key not in nb.params:
            raise FgrError(f"parameter {key!r} (from {source}) is not declared by notebook {nb.stem}; "
                           f"allowed: {nb.allowed()}")
        if key == PROFILE_PARAM:
            raise FgrError(f"parameter {key!r} (from {source}) is set by the runner to the profile it runs: "
                           f"choose it with --profile")
        out[key] = check_value(nb.params[key], value, source)
    return out


@dataclass
class RunSpec:
    """One planned execution of a notebook."""

    notebook: NotebookInfo
    profile: str
    name: str
    params: dict[str, Any]
    fingerprint: str = ""
    seed_suffix: str = ""  # a run of another seed (fgr reproduce --seeds): reads the upstream runs of its seed

    @property
    def dir(self) -> Path:
        return runs_dir() / self.profile / self.name

    @property
    def output(self) -> Path:
        return self.dir / f"{self.notebook.stem}.ipynb"


def _slug(overrides: dict) -> str:
    text = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    text = re.sub(r"[^A-Za-z0-9_.=,+-]", "", text.replace(" ", ""))
    if len(text) > 48:
        text = text[:40] + "~" + hashlib.sha256(text.encode()).hexdigest()[:7]
    return text


def plan_runs(nb: NotebookInfo, profile: str, cli: dict[str, str] | None = None,
              variant: str | None = None, name: str | None = None, ablations: bool = False) -> list[RunSpec]:
    """Resolve the effective parameters of every run of ``nb`` in ``profile`` (validated).

    A profile file's ``ablations:`` (variants like ``runs:``, each switching one component of a method
    off) are planned only with ``ablations`` (``fgr reproduce --ablations``); ``variant`` finds either."""
    check_profile(profile)
    raw = _profile_file(profile, nb.stem)
    where = f"params/{profile}/{nb.stem}.yaml"
    variants = raw.pop("runs", None)
    extra = raw.pop("ablations", None)
    if extra is not None:
        if not isinstance(extra, dict) or not extra or variants is None:
            raise FgrError(f"{where}: 'ablations' must map variant names to parameter overrides, beside 'runs'")
        if set(extra) & set(variants or {}):
            raise FgrError(f"{where}: variants {sorted(set(extra) & set(variants))} are in both 'runs' and "
                           "'ablations': name each once")
        if ablations or variant in extra:
            variants = {**variants, **extra}
    base = {**{k: p.default for k, p in nb.params.items()}, **_validate(nb, raw, where)}
    if PROFILE_PARAM in nb.params:
        base[PROFILE_PARAM] = profile
    cli_values = _validate(nb, {key: parse_cli_value(nb.params[key], text) if key in nb.params else text
                                for key, text in (cli or {}).items()}, "-p")
    if variants is None:
        chosen = {None: {}}
    else:
        if not isinstance(variants, dict) or not variants:
            raise FgrError(f"{where}: 'runs' must map variant names to parameter overrides")
        chosen = {str(k): (v or {}) for k, v in variants.items()}
    if variant is not None:
        if variant not in chosen:
            raise FgrError(f"notebook {nb.stem} has no variant {variant!r} in profile {profile}; "
                           f"variants: {', '.join(k for k in chosen if k) or '(none)'}")
        chosen = {variant: chosen[variant]}
    runs = []
    for vname, over in chosen.items():
        params = {**base, **_validate(nb, over, f"{where} runs.{vname}"), **cli_values}
        run_name = name or (nb.stem if vname is None else f"{nb.stem}-{vname}")
        if cli_values and not name:
            run_name += "+" + _slug(cli_values)
        runs.append(RunSpec(nb, profile, run_name, params))
    return runs


_RUN_NAME = re.compile(r"(?P<stem>[^-+]+)(?:-(?P<variant>[^+]+))?(?:\+(?P<slug>.+))?")


def remake_hint(name: str, profile: str) -> str:
    """What makes the run ``name`` of ``profile``, for a "has not finished" message: a command that
    works as printed (``fgr run`` with the variant and the ``-p`` overrides its name encodes), else
    where the runs that do exist are listed."""
    stem = _RUN_NAME.fullmatch(name)["stem"] if _RUN_NAME.fullmatch(name) else name
    if profile == INTERACTIVE:
        return (f"it is written when notebook {stem} is run by hand: open notebooks/{stem}.ipynb in JupyterLab "
                f"and run all cells, or name a run of a profile (`fgr results --profile demo` lists them)")
    try:
        nb = find_notebook(stem)
        planned = [r.name for r in plan_runs(nb, profile)]
    except FgrError as e:
        return str(e)
    parts = _RUN_NAME.fullmatch(name)
    variant, slug = (parts["variant"], parts["slug"]) if parts else (None, None)
    overrides = dict(kv.split("=", 1) for kv in slug.split(",") if "=" in kv) if slug else {}
    try:
        made = plan_runs(nb, profile, overrides, variant)
    except FgrError:
        made = []
    if len(made) == 1 and made[0].name == name:
        command = " ".join([f"fgr run {stem}", *([f"--variant {variant}"] if variant else []),
                            f"--profile {profile}", *(f"-p {k}={v}" for k, v in overrides.items())])
        return f"run `{command}` first"
    finished = sorted(p.parent.name for p in (runs_dir() / profile).glob(f"{stem}*/metrics.json"))
    return (f"profile {profile} makes no run of that name (it runs {', '.join(planned)}; finished: "
            f"{', '.join(finished) or 'none'}); `fgr results --profile {profile}` lists its finished runs")


# --------------------------------------------------------------------------------------------
# Fingerprints and ordering
# --------------------------------------------------------------------------------------------

def package_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.suffix in (".py", ".yaml", ".json") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(run: RunSpec, pkg_hash: str, upstream: list[str]) -> str:
    blob = json.dumps({"params": run.params, "notebook": run.notebook.source_hash, "package": pkg_hash,
                       "upstream": sorted(upstream)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def order_notebooks(notebooks: list[NotebookInfo]) -> list[NotebookInfo]:
    """Topological order by ``after`` (ties by name); unknown or cyclic dependencies are errors."""
    by_stem = {nb.stem: nb for nb in notebooks}
    for nb in notebooks:
        for dep in nb.after:
            if dep not in by_stem:
                raise FgrError(f"notebook {nb.stem} runs after {dep!r}, which does not exist")
    done: list[NotebookInfo] = []
    state: dict[str, int] = {}

    def visit(nb: NotebookInfo, chain: tuple[str, ...]) -> None:
        if state.get(nb.stem) == 2:
            return
        if state.get(nb.stem) == 1:
            raise FgrError(f"notebook dependencies form a cycle: {' -> '.join(chain + (nb.stem,))}")
        state[nb.stem] = 1
        for dep in sorted(nb.after):
            visit(by_stem[dep], chain + (nb.stem,))
        state[nb.stem] = 2
        done.append(nb)

    for nb in sorted(notebooks, key=lambda n: n.stem):
        visit(nb, ())
    return done


def with_dependencies(selected: list[NotebookInfo], all_nbs: list[NotebookInfo]) -> list[NotebookInfo]:
    by_stem = {nb.stem: nb for nb in all_nbs}
    keep: dict[str, NotebookInfo] = {}
    stack = list(selected)
    while stack:
        nb = stack.pop()
        if nb.stem not in keep:
            keep[nb.stem] = nb
            stack.extend(by_stem[d] for d in nb.after if d in by_stem)
    return order_notebooks(list(keep.values()))


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------

def ensure_kernel() -> str:
    """Make sure a kernel named ``fgr`` runs this very Python; register it in sys.prefix if absent."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        spec = None
    if spec is not None:
        exe = spec.argv[0] if spec.argv else ""
        if exe and Path(exe).absolute() == Path(sys.executable).absolute():
            return KERNEL_NAME
        if not Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve()):
            raise FgrError(f"kernel {KERNEL_NAME!r} at {spec.resource_dir} runs {exe}, not {sys.executable}: "
                           f"remove it (`jupyter kernelspec remove {KERNEL_NAME}`) and run `make kernel`")
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (fgr)", prefix=sys.prefix)
    return KERNEL_NAME


class _KnownParameters(logging.Filter):
    """papermill's own parameter sniffing misreads some valid lines (``T | None`` annotations, a
    ``<=`` in a comment) and warns; the runner has already parsed and validated every parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Passed unknown parameter") or msg.startswith("Unable to parse line"))


KERNEL_LOG = "kernel.log"


@functools.lru_cache(maxsize=1)
def _kernel_manager_class():
    """Kernels talk over local IPC sockets: parallel runs never race for TCP ports, nothing listens.

    The kernel process's own stderr (ipykernel's log lines, e.g. the interrupt it reports when it is
    shut down after a failing cell) goes to ``<run>/kernel.log``, not the terminal: a failed run ends
    with ``fgr``'s one line. What the cells print still reaches the executed notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", **kwargs)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            run_dir = os.environ.get("FGR_RUN_DIR")
            if not run_dir or "stderr" in kw:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with open(Path(run_dir) / KERNEL_LOG, "ab") as log:  # the kernel keeps its own copy of the handle
                return await super()._async_launch_kernel(kernel_cmd, stderr=log, **kw)

    return LocalKernelManager


class NotebookFailed(FgrError):
    """A cell raised; the message names the notebook, the cell and the exception."""


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(run: RunSpec, *, progress: bool = True, rank: int = 0) -> float:
    """Execute one run; return its wall time. Raises NotebookFailed naming the failing cell.

    ``rank``: this process's rank in a multi-process run (``fgr_utils.train.main``). Rank 0 owns the
    run folder (run.json, metrics.json, the executed notebook); another rank executes into
    ``<run>/rank<N>/<notebook>.ipynb``, in that folder (its kernel's IPC sockets and any relative path
    stay apart from rank 0's), and writes nothing else.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    kernel = ensure_kernel()
    for name in ("papermill", "papermill.parameterize", "papermill.translators"):
        pm_log = logging.getLogger(name)
        if not any(isinstance(f, _KnownParameters) for f in pm_log.filters):
            pm_log.addFilter(_KnownParameters())
    output = run.output if rank == 0 else run.dir / f"rank{rank}" / run.output.name
    output.parent.mkdir(parents=True, exist_ok=True)
    manifest = {"notebook": run.notebook.stem, "run": run.name, "profile": run.profile, "params": run.params,
                "fingerprint": run.fingerprint, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if rank == 0:
        (run.dir / "metrics.json").unlink(missing_ok=True)
        io.write_json(run.dir / "run.json", manifest)
    env = {"FGR_RUN_DIR": str(run.dir), "FGR_PROFILE": run.profile, "FGR_RUN_NAME": run.name,
           "FGR_NOTEBOOK": run.notebook.stem, "FGR_FINGERPRINT": run.fingerprint, "MPLBACKEND": "Agg",
           "PYTHONHASHSEED": "0", "FGR_SEED_SUFFIX": run.seed_suffix}
    t0 = time.perf_counter()
    try:
        with environment(env):
            pm.execute_notebook(str(run.notebook.path), str(output), parameters=run.params,
                                kernel_name=kernel, cwd=str(output.parent), progress_bar=progress,
                                request_save_on_cell_execute=True,
                                kernel_manager_class=_kernel_manager_class())
    except PapermillExecutionError as e:
        seconds = time.perf_counter() - t0
        if rank == 0:
            io.write_json(run.dir / "run.json", {**manifest, "status": "failed", "seconds": round(seconds, 3),
                                                  "error": f"{e.ename}: {e.evalue}"})
        first = _cell_source({"source": e.source}).strip().splitlines()
        where = f"cell {e.cell_index} (In [{e.exec_count}]: {first[0][:60] if first else ''})"
        raise NotebookFailed(f"notebook {run.notebook.stem} failed in {where}: {e.ename}: {e.evalue} "
                             f"[executed copy: {output}]") from None
    seconds = time.perf_counter() - t0
    if rank != 0:
        return seconds
    if not (run.dir / "metrics.json").exists():
        io.write_json(run.dir / "run.json", {**manifest, "status": "failed", "seconds": round(seconds, 3),
                                              "error": "the notebook did not write metrics.json"})
        raise NotebookFailed(f"notebook {run.notebook.stem} finished without writing metrics.json: "
                             "its last cell must call run.finish()")
    io.write_json(run.dir / "run.json", {**manifest, "status": "complete", "seconds": round(seconds, 3),
                                          "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return seconds


def is_up_to_date(run: RunSpec) -> bool:
    try:
        manifest = json.loads((run.dir / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("status") == "complete" and manifest.get("fingerprint") == run.fingerprint
            and (run.dir / "metrics.json").exists() and run.output.exists())


SEED_SUFFIX = "+seed={seed}"  # the name of a run of another seed: <run>+seed=<k> (the -p seed=k slug)


def plan_profile(profile: str, track: str | None = None, seeds: int = 1, ablations: bool = False) -> list[RunSpec]:
    """Every run of the profile (optionally one track plus what it depends on), in dependency order.

    With ``seeds`` > 1, every run of a notebook marked ``per_seed`` (the training notebooks and those
    that evaluate their models) is planned again for each model seed 1 .. seeds-1, named
    ``<run>+seed=<k>`` (the name ``fgr run ... -p seed=k`` gives); such a run reads the upstream runs of
    its own seed. The datasets stay those of the profile. ``ablations`` adds the profile's ablation
    variants (:func:`plan_runs`)."""
    if seeds < 1:
        raise FgrError(f"--seeds must be at least 1, not {seeds}")
    check_profile(profile)
    notebooks = list_notebooks()
    if track is not None:
        tracks = sorted({nb.track for nb in notebooks})
        if track not in tracks:
            raise FgrError(f"unknown track {track!r}; tracks: {', '.join(tracks)}")
        notebooks = with_dependencies([nb for nb in notebooks if nb.track == track], notebooks)
    else:
        notebooks = order_notebooks(notebooks)
    pkg = package_hash()
    prints: dict[tuple[str, int], list[str]] = {}  # (notebook, seed) -> fingerprints (seed 0: the profile's runs)
    per_seed = {nb.stem for nb in notebooks if nb.per_seed}
    runs: list[RunSpec] = []
    for nb in notebooks:
        for seed in range(seeds if nb.per_seed else 1):
            upstream = [fp for dep in nb.after for fp in prints.get((dep, seed if dep in per_seed else 0), [])]
            planned = plan_runs(nb, profile, {"seed": str(seed)} if seed else None, ablations=ablations)
            for run in planned:
                if seed:
                    run.seed_suffix = SEED_SUFFIX.format(seed=seed)
                run.fingerprint = fingerprint(run, pkg, upstream)
                prints.setdefault((nb.stem, seed), []).append(run.fingerprint)
                runs.append(run)
    return runs


def assign_fingerprints(runs: list[RunSpec]) -> None:
    """Fingerprint runs planned outside :func:`plan_profile` (``fgr run``) the same way it does."""
    by_profile: dict[str, dict[str, list[str]]] = {}
    pkg = package_hash()
    for run in runs:
        if run.profile not in by_profile:
            prints: dict[str, list[str]] = {}
            for planned in plan_profile(run.profile):
                prints.setdefault(planned.notebook.stem, []).append(planned.fingerprint)
            by_profile[run.profile] = prints
        upstream = [fp for dep in run.notebook.after for fp in by_profile[run.profile].get(dep, [])]
        run.fingerprint = fingerprint(run, pkg, upstream)


@dataclass
class ReproduceSummary:
    executed: list[tuple[str, float]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def reproduce(profile: str, track: str | None = None, force: bool = False, *, progress: bool = True,
              log: Callable[[str], None] = print, seeds: int = 1, ablations: bool = False) -> ReproduceSummary:
    runs = plan_profile(profile, track, seeds, ablations)
    summary = ReproduceSummary()
    t0 = time.perf_counter()
    for i, run in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {run.name}"
        if not force and is_up_to_date(run):
            log(f"{head}: up to date")
            summary.skipped.append(run.name)
            continue
        log(f"{head}: running ({run.profile} profile)")
        seconds = execute(run, progress=progress)
        log(f"{head}: done in {seconds:.1f} s")
        summary.executed.append((run.name, seconds))
    summary.seconds = time.perf_counter() - t0
    return summary
