"""Atomic file writes: a reader never sees a half-written file.

Everything is written next to its destination under a temporary name and renamed into place
(``os.replace`` is atomic on POSIX within one file system).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` if the block succeeds.

    On an exception the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(dest: str | os.PathLike, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def json_lines(items, indent: str = "") -> str:
    """A JSON list with one compact item per line, indented by ``indent`` (files that diff and grep well)."""
    if not items:
        return "[]"
    body = (",\n" + indent + " ").join(json.dumps(x, separators=(",", ":")) for x in items)
    return "[\n" + indent + " " + body + "\n" + indent + "]"


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link ``src`` to ``dst`` (one file system: no extra space), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def one_line(text: BaseException | str, limit: int = 300) -> str:
    """Collapse a message (or an exception's) onto one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split()) or (type(text).__name__ if isinstance(text, BaseException) else "")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def few(items, n: int = 5) -> str:
    """The first ``n`` of ``items`` for a one-line message: ``a, b, c and 4 more``."""
    items = [str(x) for x in items]
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


# Globals a pickle of numpy arrays needs (old and new numpy module paths, protocols 2-5);
# ``_codecs.encode`` is how protocol 2 written by Python 3 stores an array's bytes.
NUMPY_ARRAY_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    *((m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")),
    *((m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")),
})


def load_pickle(path: str | os.PathLike, allowed: frozenset | set, what: str) -> Any:
    """Unpickle ``path`` resolving only the globals in ``allowed`` ((module, name) pairs).

    Unpickling can call any function a file names, so anything else is refused before it is imported
    (``pickle.UnpicklingError`` naming the global and ``what`` the file should be). Files pickled by
    Python 2 are retried with ``encoding="latin1"`` (numpy's advice for old pickles).
    """
    import pickle

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which {what} never needs")

    def attempt(**kw):
        with open(path, "rb") as f:
            return Restricted(f, **kw).load()

    try:
        return attempt()
    except UnicodeDecodeError:
        return attempt(encoding="latin1")
