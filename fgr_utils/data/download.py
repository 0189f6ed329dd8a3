"""Fetch, unpack and check the real datasets of :mod:`fgr_utils.data.registry`.

This is the only module of the kit that touches the network. Everything it writes goes through
temporary names first:

* a download is streamed into ``<file>.part`` (resumable with an HTTP ``Range`` request) and renamed
  only once its size and checksum are right; a file with a wrong checksum is moved aside to
  ``<file>.bad``, never deleted;
* an archive is unpacked into a temporary sibling folder, checked (no absolute paths, no ``..``, no
  links leading out) and only then moved into place;
* a dataset is assembled in ``<data>/.staging-<name>/``, its layout is checked against the registry,
  a manifest (path, size, sha256 of every file) is written, and the folder is renamed to
  ``<data>/<name>/`` in one step.

Downloaded archives are cached in ``<data>/.downloads/<name>/`` and removed after a successful
install unless ``keep_archives`` is set. The Kaggle client and gdown are imported only when a dataset
needs them (``import kaggle`` authenticates at import time).

``download_dataset(name, mirror=LABEL)`` fetches from one of the spec's ``alternatives`` instead of
its own source (the same staging, checks and manifest; the manifest's ``source`` says which). A
spec's ``convert`` hook runs in the staging folder after unpacking and before the layout checks, for
mirrors whose layout differs (the QMUL-V2 mirrors hold stroke pickles that are drawn into the A/B
layout); when it fails, the staging folder is kept for inspection like a layout mismatch.
"""
from __future__ import annotations

import datetime as _dt
import filecmp
import http.client
import importlib
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from fgr_utils import io
from fgr_utils.io import file_sha256
from fgr_utils.data import registry
from fgr_utils.errors import FgrError
from fgr_utils.paths import data_dir

__all__ = [
    "http_download",
    "safe_extract",
    "download_dataset",
    "ensure_datasets",
    "verify_dataset",
    "manual_instructions",
    "kaggle_credentials",
    "file_sha256",
    "DOWNLOADS",
]

log = logging.getLogger(__name__)

DOWNLOADS = ".downloads"  # <data>/.downloads/<name>/ caches the archives of a dataset
USER_AGENT = "fgr-dataset-downloader/0.1 (Python urllib)"

KAGGLE_HELP = (
    "no Kaggle credentials found: set KAGGLE_API_TOKEN (a token from https://www.kaggle.com/settings), "
    "or save the token in ~/.kaggle/access_token, "
    "or put kaggle.json in $KAGGLE_CONFIG_DIR, ~/.kaggle or $XDG_CONFIG_HOME/kaggle, "
    "or set KAGGLE_USERNAME and KAGGLE_KEY, "
    "or run `kaggle auth login`; then run the download again"
)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder tree (links inside are not followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system, no extra space), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.I)


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def http_download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    expected_size: int | None = None,
    progress: bool = True,
    timeout: float = 60,
    chunk_size: int = 1 << 20,
    resume_hint: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``; resume a partial file; check size and sha256.

    ``resume_hint`` is the dataset name quoted in the "rerun ... to resume" advice of a truncated
    transfer. An existing ``dest`` that passes the size and checksum checks is returned untouched; one
    that fails them is moved aside to ``dest.bad`` and fetched again.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _sibling(dest, ".part")
    bad = _sibling(dest, ".bad")
    rerun = f"rerun `fgr data download {resume_hint or '<name>'}` to resume"

    if dest.is_file():
        size_ok = expected_size is None or dest.stat().st_size == expected_size
        if size_ok and (sha256 is None or file_sha256(dest).lower() == sha256.lower()):
            return dest
        os.replace(dest, bad)
        log.warning("%s failed its size or checksum check; moved aside to %s, fetching it again", dest, bad)

    total = _fetch_into(url, part, expected_size=expected_size, progress=progress, timeout=timeout,
                        chunk_size=chunk_size, label=dest.name, rerun=rerun)

    have = part.stat().st_size
    target = expected_size if expected_size is not None else total
    if target is not None and have < target:
        raise FgrError(f"download of {url} stopped after {have} of {target} bytes; the partial file {part} "
                       f"is kept: {rerun}")
    if target is not None and have > target:
        os.replace(part, bad)
        raise FgrError(f"download of {url} gave {have} bytes where {target} were expected; the file was "
                       f"moved aside to {bad}; run the download again")
    if sha256 is not None:
        actual = file_sha256(part)
        if actual.lower() != sha256.lower():
            os.replace(part, bad)
            raise FgrError(f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}; the "
                           f"file was moved aside to {bad} (a changed upstream file or a corrupt transfer)")
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, *, expected_size: int | None, progress: bool, timeout: float,
                chunk_size: int, label: str, rerun: str) -> int | None:
    """Stream ``url`` into ``part`` (appending when the server honours a Range request).

    Returns the total size the server announced (None when it did not say). Raises FgrError on an
    HTTP or connection error and on a transfer that stops before the announced size.
    """
    from tqdm import tqdm

    use_range = True
    for _attempt in range(3):
        start = part.stat().st_size if part.exists() else 0
        if expected_size is not None and start > expected_size:
            start = 0  # a stale partial file larger than the real one: begin again
            part.write_bytes(b"")
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start and use_range:
            headers["Range"] = f"bytes={start}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and "Range" in headers:
                m = _UNSATISFIED_RANGE.search(e.headers.get("Content-Range", "") or "")
                e.close()
                server_total = int(m.group(1)) if m else None
                if server_total == start or (server_total is None and expected_size == start):
                    return start  # the partial file is already complete
                part.write_bytes(b"")  # it does not fit the file on the server: begin again
                continue
            reason = io.one_line(e.reason) if e.reason else ""
            e.close()
            raise FgrError(f"download of {url} failed: HTTP {e.code} {reason}".rstrip()
                           + "; check the address or try again later") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise FgrError(f"cannot download {url}: {io.one_line(reason)}; check the network connection and "
                           "the address") from None

        with response:
            length = _int_header(response.headers.get("Content-Length"))
            if response.status == 206:
                m = _CONTENT_RANGE.search(response.headers.get("Content-Range", "") or "")
                if m is None or int(m.group(1)) != start:
                    # the server sent another piece than the one asked for: ask for the whole file
                    use_range = False
                    continue
                mode = "ab"
                if m.group(3) != "*":
                    total = int(m.group(3))
                else:
                    total = start + length if length is not None else expected_size
            else:
                start = 0  # a plain 200 reply (Range ignored or not sent): the body is the whole file
                mode = "wb"
                total = length if length is not None else expected_size
            if expected_size is not None and total is not None and total != expected_size:
                raise FgrError(f"{url} is {total} bytes on the server but {expected_size} bytes were expected; "
                               "the file changed upstream or the registry entry is wrong")

            received = start
            error: BaseException | None = None
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=label, disable=not progress, leave=False)
            try:
                with open(part, mode) as out:
                    while True:
                        try:
                            chunk = response.read(chunk_size)
                        except (OSError, http.client.HTTPException) as e:
                            error = e
                            break
                        if not chunk:
                            break
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()

        why = io.one_line(error) if error is not None else "connection closed"
        if total is not None and received < total:
            raise FgrError(f"download of {url} stopped after {received} of {total} bytes ({why}); the partial "
                           f"file {part} is kept: {rerun}")
        if total is None and error is not None:
            raise FgrError(f"download of {url} broke off after {received} bytes ({why}); the partial file "
                           f"{part} is kept: {rerun}")
        return total
    raise FgrError(f"download of {url} failed: the server keeps answering the resume request wrongly; "
                   f"delete {part} and download again")


# --------------------------------------------------------------------------------------------
# archives
# --------------------------------------------------------------------------------------------


def _archive_kind(path: Path) -> str | None:
    """'zip' or 'tar' from the file's first bytes (the extension is only a fallback)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return "tar"  # gzip, bzip2, xz: tarfile checks that a tar is inside
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    return None


def _clean_name(name: str, archive: Path) -> str | None:
    """The member path as 'a/b/c', or None for the archive root; refuse absolute paths and '..'."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise FgrError(f"refusing to extract {archive.name}: member {name!r} has an absolute path; nothing "
                       "was extracted")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FgrError(f"refusing to extract {archive.name}: member {name!r} leads out of the target folder "
                       "('..'); nothing was extracted")
    return "/".join(parts) if parts else None


def _check_symlink(clean: str, target: str, name: str, archive: Path) -> None:
    target = target.replace("\\", "/")
    if not target or target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise FgrError(f"refusing to extract {archive.name}: member {name!r} is a link to the absolute path "
                       f"{target!r}; nothing was extracted")
    resolved = os.path.normpath(os.path.join(os.path.dirname(clean), target))
    if resolved == ".." or resolved.startswith("../") or os.path.isabs(resolved):
        raise FgrError(f"refusing to extract {archive.name}: member {name!r} is a link to {target!r}, outside "
                       "the target folder; nothing was extracted")


class _Plan:
    """What to create, in archive order: ("dir" | "file" | "symlink" | "hardlink", path, payload)."""

    def __init__(self, archive: Path):
        self.archive = archive
        self.items: list[tuple[str, str, object]] = []
        self.links: set[str] = set()
        self.files: set[str] = set()

    def _not_beneath_link(self, clean: str, name: str) -> None:
        parts = clean.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.links:
                raise FgrError(f"refusing to extract {self.archive.name}: member {name!r} lies beneath the link "
                               f"{prefix!r}; nothing was extracted")

    def add(self, kind: str, name: str, payload: object = None, link: str | None = None) -> None:
        clean = _clean_name(name, self.archive)
        if clean is None:
            return
        self._not_beneath_link(clean, name)
        if kind == "symlink":
            _check_symlink(clean, link or "", name, self.archive)
            self.links.add(clean)
            payload = link
        elif kind == "hardlink":
            try:
                source = _clean_name(link or "", self.archive)
            except FgrError:
                raise FgrError(f"refusing to extract {self.archive.name}: member {name!r} is a hard link to "
                               f"{link!r}, outside the target folder; nothing was extracted") from None
            if source is None or source not in self.files:
                raise FgrError(f"refusing to extract {self.archive.name}: member {name!r} is a hard link to "
                               f"{link!r}, which is not a file of the archive; nothing was extracted")
            self._not_beneath_link(source, name)
            payload = source
        else:
            self.links.discard(clean)
        if kind in ("file", "hardlink"):
            self.files.add(clean)
        else:
            self.files.discard(clean)
        self.items.append((kind, clean, payload))


def _plan_tar(tf: tarfile.TarFile, archive: Path) -> _Plan:
    plan = _Plan(archive)
    for m in tf.getmembers():
        if m.isdir():
            plan.add("dir", m.name)
        elif m.isreg():
            plan.add("file", m.name, m)
        elif m.issym():
            plan.add("symlink", m.name, link=m.linkname)
        elif m.islnk():
            plan.add("hardlink", m.name, link=m.linkname)
        else:
            log.info("%s: skipping special member %s", archive.name, m.name)  # devices, fifos
    return plan


def _plan_zip(zf: zipfile.ZipFile, archive: Path) -> _Plan:
    plan = _Plan(archive)
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode) if info.create_system == 3 else 0
        if info.is_dir():
            plan.add("dir", info.filename)
        elif kind == stat.S_IFLNK:
            target = zf.read(info).decode("utf-8", "surrogateescape")
            plan.add("symlink", info.filename, link=target)
        elif kind in (0, stat.S_IFREG):
            plan.add("file", info.filename, info)
        else:
            log.info("%s: skipping special member %s", archive.name, info.filename)
    return plan


def _prepare(path: Path) -> None:
    """Make room for a new member at ``path`` (never writing through an existing link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        raise FgrError(f"cannot extract {path.name}: the archive holds both a folder and a file of that name")


def _write_plan(plan: _Plan, root: Path, open_member, executable) -> list[str]:
    written: list[str] = []
    for kind, clean, payload in plan.items:
        path = root / clean
        if kind == "dir":
            if path.is_symlink() or path.is_file():
                path.unlink()
            path.mkdir(parents=True, exist_ok=True)
            continue
        _prepare(path)
        if kind == "file":
            with open_member(payload) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(path, 0o755 if executable(payload) else 0o644)
        elif kind == "symlink":
            os.symlink(payload, path)
        elif kind == "hardlink":
            shutil.copyfile(root / payload, path)
        written.append(clean)
    return written


def _links_stay_inside(root: Path, archive: Path) -> None:
    base = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            p = os.path.join(dirpath, entry)
            if os.path.islink(p):
                real = os.path.realpath(p)
                if real != base and not real.startswith(base + os.sep):
                    rel = os.path.relpath(p, root)
                    raise FgrError(f"refusing to extract {archive.name}: the link {rel!r} leads out of the target "
                                   "folder; nothing was extracted")


def _merge_plan(src: Path, dst: Path, moves: list[tuple[Path, Path]], clashes: list[str], rel: str = "") -> None:
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        s, d = Path(entry.path), dst / entry.name
        here = f"{rel}{entry.name}"
        if not os.path.lexists(d):
            moves.append((s, d))
            continue
        s_dir = entry.is_dir(follow_symlinks=False)
        d_dir = d.is_dir() and not d.is_symlink()
        if s_dir and d_dir:
            _merge_plan(s, d, moves, clashes, here + "/")
        elif (not s_dir and not d_dir and not s.is_symlink() and not d.is_symlink()
              and filecmp.cmp(s, d, shallow=False)):
            continue  # the same file again
        else:
            clashes.append(here)


def safe_extract(archive: str | os.PathLike, target_dir: str | os.PathLike) -> list[Path]:
    """Unpack a zip or tar (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz) archive into ``target_dir``.

    The type is read from the file's content. Every member is checked before anything is written:
    absolute paths, ``..`` components, members stored beneath a link, and symbolic or hard links that
    lead out of the folder are refused with an :class:`FgrError`; device files and fifos are skipped.
    The archive is unpacked into a temporary sibling folder and its contents are then moved into
    ``target_dir`` (merging with folders already there; a file that already exists with other content
    is an error), so a failure leaves ``target_dir`` as it was. Returns the paths of the files and
    links written (folders left out).
    """
    archive = Path(archive)
    target = Path(target_dir)
    if not archive.is_file():
        raise FgrError(f"archive {archive} does not exist")
    kind = _archive_kind(archive)
    if kind is None:
        raise FgrError(f"{archive} is neither a zip nor a tar archive; delete it and download it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise FgrError(f"cannot extract {archive.name} into {target}: it is not a folder")

    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{target.name}-", dir=target.parent))
    try:
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    plan = _plan_zip(zf, archive)
                    written = _write_plan(plan, tmp, zf.open,
                                          lambda i: bool((i.external_attr >> 16) & 0o111))
            else:
                with tarfile.open(archive, "r:*") as tf:
                    plan = _plan_tar(tf, archive)
                    written = _write_plan(plan, tmp, tf.extractfile, lambda m: bool(m.mode & 0o111))
        except FgrError:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as e:
            raise FgrError(f"cannot extract {archive}: {io.one_line(e)}; the file is damaged, delete it and "
                           "download it again") from None
        except OSError as e:
            raise FgrError(f"cannot extract {archive} into {target}: {io.one_line(e)}") from None
        _links_stay_inside(tmp, archive)

        moves: list[tuple[Path, Path]] = []
        clashes: list[str] = []
        target.mkdir(parents=True, exist_ok=True)
        _merge_plan(tmp, target, moves, clashes)
        if clashes:
            raise FgrError(f"cannot extract {archive.name} into {target}: {len(clashes)} path(s) already exist "
                           f"with other content ({io.few(clashes)}); nothing was extracted")
        for s, d in moves:
            shutil.move(str(s), str(d))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [target / w for w in dict.fromkeys(written)]


# --------------------------------------------------------------------------------------------
# Kaggle and Google Drive (imported lazily)
# --------------------------------------------------------------------------------------------


def kaggle_credentials() -> str | None:
    """Where the Kaggle client would find credentials (in its own order), or None when there are none."""
    home = Path.home()
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for fname in ("access_token", "access_token.txt"):
        p = home / ".kaggle" / fname
        if p.is_file() and p.read_text(errors="replace").strip():
            return str(p)
    env_dir = os.environ.get("KAGGLE_CONFIG_DIR")
    if env_dir:
        config_dir = Path(env_dir)
    elif (home / ".kaggle").exists():
        config_dir = home / ".kaggle"
    else:
        config_dir = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    if (config_dir / "kaggle.json").is_file():
        return str(config_dir / "kaggle.json")
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    if (home / ".kaggle" / "credentials.json").is_file():  # `kaggle auth login`
        return str(home / ".kaggle" / "credentials.json")
    return None


def _fetch_kaggle(spec: registry.DatasetSpec, cache: Path, progress: bool) -> Path:
    where = kaggle_credentials()
    if where is None:
        raise FgrError(KAGGLE_HELP)
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi  # authenticates on import: only here

        api = KaggleApi()
        api.authenticate()
    except (Exception, SystemExit) as e:
        raise FgrError(f"Kaggle sign-in with the credentials from {where} failed ({io.one_line(e)}); check them or "
                       "create a new token at https://www.kaggle.com/settings") from None
    try:
        api.dataset_download_files(spec.kaggle_id, path=str(cache), unzip=False, quiet=not progress)
    except (Exception, SystemExit) as e:
        raise FgrError(f"Kaggle download of {spec.kaggle_id} failed ({io.one_line(e)}); accept the dataset's terms "
                       f"on https://www.kaggle.com/datasets/{spec.kaggle_id} and run `fgr data download "
                       f"{spec.name}` again") from None
    slug = spec.kaggle_id.split("/")[1] if "/" in spec.kaggle_id else spec.kaggle_id
    zip_path = cache / f"{slug}.zip"
    if zip_path.is_file():
        return zip_path
    found = sorted(cache.glob("*.zip"))
    if len(found) == 1:
        return found[0]
    raise FgrError(f"Kaggle download of {spec.kaggle_id} left no zip file in {cache}; run `fgr data download "
                   f"{spec.name}` again")


def _fetch_gdrive(spec: registry.DatasetSpec, archive: registry.Archive, dest: Path, progress: bool) -> Path:
    if not dest.is_file():
        import gdown  # only when a Drive file is needed

        try:
            out = gdown.download(id=archive.gdrive_id, output=str(dest), quiet=not progress, resume=True)
        except Exception as e:
            out = None
            why = io.one_line(e)
        else:
            why = "gdown returned nothing"
        if out is None or not dest.is_file():
            raise FgrError(f"Google Drive download of {archive.gdrive_id} ({archive.name}) for {spec.name} failed "
                           f"({why}); Drive quotas reset after a day, or fetch the file by hand into {dest}")
    if archive.sha256:
        actual = file_sha256(dest)
        if actual.lower() != archive.sha256.lower():
            bad = _sibling(dest, ".bad")
            os.replace(dest, bad)
            raise FgrError(f"checksum mismatch for Drive file {archive.gdrive_id}: expected sha256 "
                           f"{archive.sha256.lower()}, got {actual}; the file was moved aside to {bad}")
    return dest


def _fetch_gdrive_folder(spec: registry.DatasetSpec, folder: Path, progress: bool) -> Path:
    import gdown  # only when a Drive folder is needed

    folder.mkdir(parents=True, exist_ok=True)
    try:
        files = gdown.download_folder(id=spec.gdrive_folder_id, output=str(folder), quiet=not progress, resume=True)
        why = "gdown returned nothing"
    except Exception as e:
        files, why = None, io.one_line(e)
    if not files:
        raise FgrError(f"Google Drive folder {spec.gdrive_folder_id} for {spec.name} could not be fetched ({why}); "
                       f"Drive quotas reset after a day, or download the folder by hand into {folder}")
    return folder


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
        _link_or_copy(file, target)
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
                    file = _fetch_gdrive(spec, archive, dest, progress)
                owned.append(file)
            _place(archive, file, staging)
    elif spec.source == "kaggle":
        file = _fetch_kaggle(spec, cache, progress)
        owned.append(file)
        safe_extract(file, staging)
    elif spec.source == "gdrive-folder":
        folder = _fetch_gdrive_folder(spec, cache / "folder", progress)
        owned.append(folder)
        shutil.copytree(folder, staging, dirs_exist_ok=True, copy_function=_link_or_copy)
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

