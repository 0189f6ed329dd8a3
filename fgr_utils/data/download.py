"""Fetch, unpack and check the real datasets of :mod:`fgr_utils.data.registry`.

:func:`download_dataset` (``fgr data download NAME``) assembles a dataset from its registry entry;
:func:`ensure_datasets`, :func:`verify_dataset` (``fgr data verify NAME``) and
:func:`manual_instructions` are what the CLI and the notebooks call. The transfers themselves are
:mod:`fgr_utils.data.fetch` (HTTP with resume, Kaggle, Google Drive) and the unpacking is
:mod:`fgr_utils.data.archives`; everything written goes through temporary names first:

* a download is streamed into ``<file>.part`` and renamed only once its size and checksum are right
  (:func:`~fgr_utils.data.fetch.http_download`);
* an archive is unpacked into a temporary sibling folder, checked (no absolute paths, no ``..``, no
  links leading out) and only then moved into place (:func:`~fgr_utils.data.archives.safe_extract`);
* a dataset is assembled in ``<data>/.staging-<name>/``, its layout is checked against the registry,
  a manifest (path, size, sha256 of every file) is written, and the folder is renamed to
  ``<data>/<name>/`` in one step.

Downloaded archives are cached in ``<data>/.downloads/<name>/`` and removed after a successful
install unless ``keep_archives`` is set.

``download_dataset(name, mirror=LABEL)`` fetches from one of the spec's ``alternatives`` instead of
its own source (the same staging, checks and manifest; the manifest's ``source`` says which). A
spec's ``convert`` hook runs in the staging folder after unpacking and before the layout checks, for
mirrors whose layout differs (the QMUL-V2 mirrors hold stroke pickles that are drawn into the A/B
layout); when it fails, the staging folder is kept for inspection like a layout mismatch.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fgr_utils import io
from fgr_utils.data import registry
from fgr_utils.data.archives import safe_extract
from fgr_utils.data.fetch import fetch_gdrive, fetch_gdrive_folder, fetch_kaggle, http_download
from fgr_utils.errors import FgrError
from fgr_utils.io import file_sha256
from fgr_utils.paths import data_dir

__all__ = ["download_dataset", "ensure_datasets", "verify_dataset", "manual_instructions", "DOWNLOADS"]

log = logging.getLogger(__name__)

DOWNLOADS = ".downloads"  # <data>/.downloads/<name>/ caches the archives of a dataset


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder tree (links inside are not followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------


def _spec(name_or_spec: str | registry.DatasetSpec) -> registry.DatasetSpec:
    if isinstance(name_or_spec, registry.DatasetSpec):
        return name_or_spec
    return registry.get(name_or_spec)


def _shared_archive(spec: registry.DatasetSpec, archive: registry.Archive, base: Path) -> Path | None:
    """The same archive already downloaded for another dataset (shoev2 and chairv2 share one zip)."""
    for other in registry.DATASETS.values():
        if other.name == spec.name:
            continue
        for oa in other.archives + tuple(a for m in other.alternatives for a in m.archives):
            if (oa.name, oa.url, oa.gdrive_id) != (archive.name, archive.url, archive.gdrive_id):
                continue
            p = base / DOWNLOADS / other.name / oa.name
            if p.is_file() and (archive.size is None or p.stat().st_size == archive.size) and (
                    archive.sha256 is None or file_sha256(p).lower() == archive.sha256.lower()):
                return p
    return None


def _flatten_into(tree: Path, dest: Path, archive: registry.Archive) -> None:
    """Move every regular file found under ``tree`` directly into ``dest``; clashing names are an error."""
    found: dict[str, Path] = {}
    clashes: list[str] = []
    for dirpath, _dirs, filenames in os.walk(tree):
        for fname in filenames:
            p = Path(dirpath) / fname
            if p.is_symlink() or not p.is_file():
                continue
            if fname in found:
                clashes.append(f"{found[fname].relative_to(tree)} and {p.relative_to(tree)}")
            elif os.path.lexists(dest / fname):
                clashes.append(f"{p.relative_to(tree)} and the existing {dest.name}/{fname}")
            else:
                found[fname] = p
    if clashes:
        raise FgrError(f"cannot flatten {archive.name} into {dest.name}/: file names clash ({io.few(clashes, 3)})")
    dest.mkdir(parents=True, exist_ok=True)
    for fname, p in sorted(found.items()):
        shutil.move(str(p), str(dest / fname))


def _place(archive: registry.Archive, file: Path, staging: Path) -> None:
    sub = staging / archive.subdir if archive.subdir else staging
    if not archive.extract:
        sub.mkdir(parents=True, exist_ok=True)
        target = sub / archive.name
        if os.path.lexists(target):
            raise FgrError(f"two sources write {target.relative_to(staging)}; fix the registry entry")
        io.link_or_copy(file, target)
    elif archive.flatten:
        tmp = Path(tempfile.mkdtemp(prefix=".flatten-", dir=staging.parent))
        try:
            safe_extract(file, tmp / "tree")
            _flatten_into(tmp / "tree", sub, archive)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        safe_extract(file, sub)


def _make_links(spec: registry.DatasetSpec, staging: Path, base: Path) -> None:
    final = base / spec.name
    for inside, other in spec.links:
        link = staging / inside
        target = base / other
        if not target.exists():
            needed = other.split("/")[0]
            raise FgrError(f"{spec.name} links {inside} to {other}, but {target} does not exist; run `fgr data "
                           f"download {needed}` first")
        if os.path.lexists(link):
            raise FgrError(f"{spec.name}: cannot create the link {inside}: the download already holds that path")
        link.parent.mkdir(parents=True, exist_ok=True)
        # relative, so it survives renaming staging -> <name> (same depth) and moving the data folder
        os.symlink(os.path.relpath(target, (final / inside).parent), link)


def _write_manifest(spec: registry.DatasetSpec, root: Path) -> dict:
    files: list[dict] = []
    links: list[dict] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in list(dirnames):
            p = Path(dirpath) / d
            if p.is_symlink():  # recorded, not followed
                links.append({"path": p.relative_to(root).as_posix(), "target": os.readlink(p)})
                dirnames.remove(d)
        for fname in filenames:
            p = Path(dirpath) / fname
            rel = p.relative_to(root).as_posix()
            if rel == registry.MANIFEST:
                continue
            if p.is_symlink():
                links.append({"path": rel, "target": os.readlink(p)})
                continue
            files.append({"path": rel, "size": p.stat().st_size, "sha256": file_sha256(p)})
    files.sort(key=lambda f: f["path"])
    links.sort(key=lambda f: f["path"])
    manifest = {
        "dataset": spec.name,
        "title": spec.title,
        "source": spec.source_text,
        "downloaded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "file_count": len(files),
        "total_bytes": sum(f["size"] for f in files),
        "files": files,
        "links": links,
    }
    io.write_json(root / registry.MANIFEST, manifest)
    return manifest


def _install(staging: Path, root: Path, force: bool) -> None:
    if not os.path.lexists(root):
        os.replace(staging, root)
        return
    old = root.with_name(f".replaced-{root.name}")
    if os.path.lexists(old):
        _remove(old)
    os.replace(root, old)
    os.replace(staging, root)
    if force:
        _remove(old)
    else:
        log.warning("the previous, incomplete copy of %s was moved to %s", root.name, old)


def _fetch(spec: registry.DatasetSpec, staging: Path, cache: Path, base: Path, progress: bool) -> list[Path]:
    """Download (or reuse) the sources of ``spec`` and unpack them into ``staging``.

    Returns the cache entries this dataset owns (deleted after a successful install).
    """
    name = spec.name
    owned: list[Path] = []
    if spec.source in ("http", "gdrive"):
        for archive in spec.archives:
            file = _shared_archive(spec, archive, base)
            if file is None:
                dest = cache / archive.name
                if spec.source == "http":
                    file = http_download(archive.url, dest, sha256=archive.sha256, expected_size=archive.size,
                                         progress=progress, resume_hint=name)
                else:
                    file = fetch_gdrive(spec, archive, dest, progress)
                owned.append(file)
            _place(archive, file, staging)
    elif spec.source == "kaggle":
        file = fetch_kaggle(spec, cache, progress)
        owned.append(file)
        safe_extract(file, staging)
    elif spec.source == "gdrive-folder":
        folder = fetch_gdrive_folder(spec, cache / "folder", progress)
        owned.append(folder)
        shutil.copytree(folder, staging, dirs_exist_ok=True, copy_function=io.link_or_copy)
    else:  # pragma: no cover - DatasetSpec validates the source
        raise FgrError(f"{name}: unknown source {spec.source!r}")

    return owned


def _convert(spec: registry.DatasetSpec, staging: Path) -> None:
    """Run ``spec.convert`` ("module:function", called as function(staging, spec)) on the unpacked files."""
    module, _, func = spec.convert.partition(":")
    try:
        hook = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError, ValueError):
        raise FgrError(f"{spec.name}: the converter {spec.convert!r} does not exist; fix the registry entry") from None
    try:
        hook(staging, spec)
    except OSError as e:
        raise FgrError(f"{spec.name}: converting the downloaded files failed: {io.one_line(e)}") from None


def _prune_empty(cache: Path) -> None:
    for d in (cache, cache.parent):
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass


def download_dataset(
    name_or_spec: str | registry.DatasetSpec,
    *,
    keep_archives: bool = False,
    progress: bool = True,
    force: bool = False,
    mirror: str | None = None,
) -> Path | None:
    """Fetch a registered dataset into ``<data>/<name>/``; return that folder.

    ``mirror`` names one of the spec's ``alternatives`` (e.g. ``"kaggle"`` for shoev2 / chairv2) to
    fetch from instead of the spec's own source; an unknown label is an :class:`FgrError` listing the
    known ones.

    Datasets in ``spec.requires`` are fetched first. A copy that already passes
    :func:`verify_dataset` is returned untouched unless ``force``. For a ``manual`` dataset nothing is
    downloaded: the folder is returned when it verifies, else None (print
    :func:`manual_instructions`). Raises :class:`FgrError` on any failure; the staging folder
    ``<data>/.staging-<name>/`` and the cached archives are then kept for inspection and resuming.
    """
    spec = _spec(name_or_spec)
    if mirror is not None:
        spec = spec.via(mirror)
    return _download(spec, keep_archives=keep_archives, progress=progress, force=force, stack=())


def _download(spec: registry.DatasetSpec, *, keep_archives: bool, progress: bool, force: bool,
              stack: tuple[str, ...]) -> Path | None:
    name = spec.name
    if name in stack:
        raise FgrError(f"the datasets require each other in a cycle: {' -> '.join(stack + (name,))}")
    base = data_dir()
    root = base / name
    if os.path.lexists(root) and not force and verify_dataset(spec).ok:
        return root
    if spec.source == "manual":
        return None
    for required in spec.requires:
        _download(_spec(required), keep_archives=keep_archives, progress=progress, force=False, stack=stack + (name,))

    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".staging-{name}"
    if os.path.lexists(staging):
        _remove(staging)  # left over from an interrupted run
    staging.mkdir()
    cache = base / DOWNLOADS / name
    cache.mkdir(parents=True, exist_ok=True)
    try:
        owned = _fetch(spec, staging, cache, base, progress)  # cache entries removed after success
        _make_links(spec, staging, base)
    except BaseException:
        # nothing worth inspecting yet: drop the half-filled staging folder, keep partial downloads
        _remove(staging)
        _prune_empty(cache)
        raise
    if spec.convert:
        try:
            _convert(spec, staging)
        except FgrError as e:
            raise FgrError(f"{e}; the downloaded files are kept in {staging} for inspection "
                           f"(archives in {cache})") from None
    report = registry.verify_layout(spec, staging)
    if not report.ok:
        raise FgrError(f"{name}: the downloaded files do not have the expected layout: "
                       f"{'; '.join(report.problems)}; they are kept in {staging} for inspection "
                       f"(archives in {cache})")
    _write_manifest(spec, staging)
    _install(staging, root, force)

    if not keep_archives:
        for p in owned:
            if os.path.lexists(p):
                _remove(p)
        _prune_empty(cache)
    return root


def ensure_datasets(names, *, keep_archives: bool = False, progress: bool = True) -> dict[str, Path]:
    """Make sure every dataset in ``names`` is on disk; return ``{name: folder}`` in the given order.

    Downloadable datasets are fetched when missing (nothing happens for one that already verifies).
    A manual dataset is never fetched: its folder is returned as it is and, when it does not verify
    yet, the steps to place it by hand are printed; :func:`verify_dataset` then reports it as not ok.
    """
    out: dict[str, Path] = {}
    for name in names:
        root = download_dataset(name, keep_archives=keep_archives, progress=progress)
        if root is None:
            print(manual_instructions(name))
            root = registry.dataset_root(name)
        out[name] = root
    return out


def verify_dataset(name_or_spec: str | registry.DatasetSpec) -> registry.VerifyReport:
    """The registry's layout checks plus, when a manifest exists, a size check of every file in it."""
    spec = _spec(name_or_spec)
    root = data_dir() / spec.name
    report = registry.verify_layout(spec, root)
    manifest_path = root / registry.MANIFEST
    if not root.is_dir() or not manifest_path.is_file():
        return report
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = list(manifest.get("files", []))
        links = list(manifest.get("links", []))
    except (OSError, ValueError, AttributeError) as e:
        report.problems.append(f"the manifest {manifest_path} is unreadable ({io.one_line(e)})")
        return report
    missing: list[str] = []
    changed: list[str] = []
    for entry in entries:
        rel = entry.get("path", "")
        try:
            size = (root / rel).stat().st_size
        except OSError:
            missing.append(rel)
            continue
        if size != entry.get("size"):
            changed.append(f"{rel} ({entry.get('size')} -> {size} bytes)")
    for link in links:
        rel = link.get("path", "")
        p = root / rel
        if not os.path.lexists(p):
            missing.append(rel)
        elif not p.exists():
            changed.append(f"{rel} (broken link to {link.get('target')})")
    if missing:
        report.problems.append(f"{len(missing)} file(s) of the manifest are missing: {io.few(missing)}")
    if changed:
        report.problems.append(f"{len(changed)} file(s) changed since download: {io.few(changed)}")
    return report


def manual_instructions(name: str) -> str:
    """The steps to fetch a manual dataset by hand, the destination folder and what must end up there."""
    spec = registry.get(name)
    dest = registry.dataset_root(name)
    lines = [f"{spec.title} ({name}) cannot be downloaded automatically"
             + (f" (licence: {spec.licence})." if spec.licence else ".")]
    steps = registry.manual_steps(name)
    lines += [f"  {i}. {step}" for i, step in enumerate(steps, 1)]
    lines.append(f"Destination folder: {dest}")
    if spec.layout:
        lines.append("Expected there: " + "; ".join(check.describe() for check in spec.layout))
    return "\n".join(lines)

