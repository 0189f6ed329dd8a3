"""Fetching files: HTTP with resume, Kaggle and Google Drive (the kit's only network access).

* :func:`http_download` streams into ``<file>.part``, resumes a partial file with an HTTP ``Range``
  request (checking the ``Content-Range`` the server answers with, and starting over when it answers
  another piece or a 416 that does not fit), and renames the file into place only once its size and
  sha256 are right; a file with a wrong checksum is moved aside to ``<file>.bad``, never deleted.
* :func:`fetch_kaggle`, :func:`fetch_gdrive` and :func:`fetch_gdrive_folder` fetch a registry entry's
  Kaggle dataset, Drive file or Drive folder. The Kaggle client and gdown are imported only inside
  them (``import kaggle`` authenticates at import time); :func:`kaggle_credentials` says beforehand
  where the client would find credentials, so that a missing token is one clear line.

What to fetch and where it goes is :mod:`fgr_utils.data.download`'s business.
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from fgr_utils import io
from fgr_utils.data.registry import Archive, DatasetSpec
from fgr_utils.errors import FgrError
from fgr_utils.io import file_sha256

__all__ = ["http_download", "kaggle_credentials", "fetch_kaggle", "fetch_gdrive", "fetch_gdrive_folder",
           "USER_AGENT", "KAGGLE_HELP"]

# logged under the downloader's name: that is the logger a user of `fgr data download` configures
log = logging.getLogger("fgr_utils.data.download")

USER_AGENT = "fgr-dataset-downloader/0.1 (Python urllib)"

KAGGLE_HELP = (
    "no Kaggle credentials found: set KAGGLE_API_TOKEN (a token from https://www.kaggle.com/settings), "
    "or save the token in ~/.kaggle/access_token, "
    "or put kaggle.json in $KAGGLE_CONFIG_DIR, ~/.kaggle or $XDG_CONFIG_HOME/kaggle, "
    "or set KAGGLE_USERNAME and KAGGLE_KEY, "
    "or run `kaggle auth login`; then run the download again"
)


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


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


def fetch_kaggle(spec: DatasetSpec, cache: Path, progress: bool) -> Path:
    """Download ``spec.kaggle_id`` as a zip into ``cache``; return the zip. Errors say how to fix them."""
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


def fetch_gdrive(spec: DatasetSpec, archive: Archive, dest: Path, progress: bool) -> Path:
    """The Drive file of ``archive`` at ``dest`` (fetched unless there already), its sha256 checked when known."""
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


def fetch_gdrive_folder(spec: DatasetSpec, folder: Path, progress: bool) -> Path:
    """Download the Drive folder ``spec.gdrive_folder_id`` into ``folder``; return ``folder``."""
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

