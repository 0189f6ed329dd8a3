"""Safe unpacking of zip and tar archives (:func:`safe_extract`).

The archive's kind is read from its first bytes (the extension is only a fallback). Every member is
planned and checked before anything is written: absolute paths, ``..`` components, members stored
beneath a link, and symbolic or hard links that lead out of the target folder are refused; device
files and fifos are skipped. The archive is unpacked into a temporary sibling folder, its links are
checked once more on disk, and only then are its contents moved into place, so a refused or damaged
archive leaves the target folder as it was.
"""
from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

from fgr_utils import io
from fgr_utils.errors import FgrError

__all__ = ["safe_extract"]

# logged under the downloader's name: that is the logger a user of `fgr data download` configures
log = logging.getLogger("fgr_utils.data.download")


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
