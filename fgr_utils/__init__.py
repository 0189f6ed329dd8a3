"""fgr_utils: everything the fgr notebooks call.

Modules: ``runner`` (papermill, profiles, parameters), ``results`` (metrics.json, report),
``metrics`` (every paper's metric), ``index`` (exact / FAISS / KD-tree search), ``data``
(registry, downloads, readers, synthetic generators).
"""
from fgr_utils.errors import DatasetMissing, FgrError

__version__ = "0.1.0"

__all__ = ["FgrError", "DatasetMissing", "__version__", "start_run"]


def start_run(notebook: str, namespace: dict | None = None, **kwargs):
    """Open the run record of a notebook (see :func:`fgr_utils.results.start_run`)."""
    from fgr_utils.results import start_run as _start_run

    return _start_run(notebook, namespace, **kwargs)
