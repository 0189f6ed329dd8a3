"""fgr_utils: everything the fgr notebooks call.

Shared machinery: ``runner`` (papermill, profiles, parameters), ``results`` (the run record),
``report``, ``train`` (the one trainer), ``embed`` (batched extraction, caches), ``index``,
``metrics``, ``search`` and ``serve``, ``data`` (registry, downloads, readers, synthetic generators).
Each paper's method lives in its track's wing, ``fgr_utils.tracks.<fabric|sbir|asfr>``.
"""
from fgr_utils.errors import DatasetMissing, FgrError
from fgr_utils.results import start_run

__version__ = "0.1.0"

__all__ = ["FgrError", "DatasetMissing", "__version__", "start_run"]
