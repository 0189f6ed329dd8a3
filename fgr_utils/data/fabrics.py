"""Reader for printed-fabric sub-element retrieval: SimulatedPrintedFabrics-17k (Kaggle) and ``sim-fabrics``.

One reader serves the paper run, the demo and the tests (design principle 1). :func:`load_fabrics`:

1. uses ``fabrics-manifest.json`` when it is present (the kit's explicit manifest, written by the
   ``sim-fabrics`` generator or by step 2);
2. otherwise finds the ``SimulatedPrintedFabrics-17k`` folder anywhere below ``root`` and converts the
   paper's files beside it into the same schema (:mod:`fgr_utils.data.fabrics_convert`, which also
   lists those files and how their keys are normalised); the converted manifest is written back
   beside the files and re-made when one of the files it came from changes;
3. raises :class:`~fgr_utils.errors.FgrError` with one line naming what it found when the layout does
   not match (e.g. ``found SimulatedPrintedFabrics-17k/train but no Train_split.json; expected ...``).

Every file the manifest lists is checked to exist (missing ones: one ``FgrError`` line with the first
few and the count) unless ``check_files=False``; :meth:`FabricSet.check_images` also decodes them.
Images that cannot be decoded are left out with :func:`fgr_utils.data.reader.without_unreadable`
(:meth:`FabricSet.without` says what leaves with them).

The records, :class:`FabricSet`, the manifest schema and its ground-truth levels live in
:mod:`fgr_utils.data.fabrics_manifest`; this module re-exports them, so ``fgr_utils.data.fabrics`` is
the one place to import the reader from.
"""
from __future__ import annotations

import os
from pathlib import Path

from fgr_utils.data.fabrics_convert import convert, find_dataset_folder, is_stale
from fgr_utils.data.fabrics_manifest import (DATASET_FOLDER, ELEMENT_DIR, GT_KEYS, LEVELS, MANIFEST_FILE, SPLIT_FILES,
                                             SPLITS, SUB_FILES, FabricRecord, FabricSet, FabricSplit, MotifRecord,
                                             QueryRecord, Triplet, element_key, fabric_key, from_manifest, read_json,
                                             write_manifest)
from fgr_utils.errors import DatasetMissing, FgrError

__all__ = [
    "FabricSet", "FabricRecord", "MotifRecord", "QueryRecord", "FabricSplit", "Triplet",
    "load_fabrics", "element_key", "fabric_key", "write_manifest",
    "MANIFEST_FILE", "DATASET_FOLDER", "ELEMENT_DIR", "SPLITS", "GT_KEYS", "LEVELS",
    "SPLIT_FILES", "SUB_FILES",
]


def load_fabrics(root: str | os.PathLike, *, check_files: bool = True, gt_key: str = "element_id",
                 dataset_folder: str = DATASET_FOLDER, write_converted: bool = True) -> FabricSet:
    """Load a printed-fabric dataset (the generated ``sim-fabrics`` set or the Kaggle download).

    ``root`` may be the folder holding ``fabrics-manifest.json``, the folder holding (at any depth up
    to four) the ``SimulatedPrintedFabrics-17k`` folder, or that folder itself. See the module doc for
    the lookup order, the conversion of the paper's files and the errors. ``gt_key`` sets the default
    of :meth:`FabricSet.relevant` (``"element_id"`` or ``"category"``).
    """
    if gt_key not in GT_KEYS:
        raise FgrError(f"gt_key must be one of {', '.join(GT_KEYS)}, not {gt_key!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetMissing(f"fabric dataset folder {root} does not exist")
    manifest = root / MANIFEST_FILE
    spf = None
    if not manifest.is_file():
        spf = find_dataset_folder(root, dataset_folder)
        if spf is not None and (spf.parent / MANIFEST_FILE).is_file():
            manifest = spf.parent / MANIFEST_FILE
    if manifest.is_file():
        data = read_json(manifest)
        if isinstance(data, dict) and is_stale(data, manifest.parent):
            spf = spf or find_dataset_folder(manifest.parent, dataset_folder)
            if spf is None:
                raise FgrError(f"{manifest} was converted from files that changed, and no {dataset_folder} folder "
                               f"is under {manifest.parent} to convert again")
            ds = convert(root, spf, dataset_folder, gt_key, write_converted)
        else:
            ds = from_manifest(data, manifest, gt_key)
    elif spf is None:
        top = sorted(e.name for e in os.scandir(root) if not e.name.startswith("."))
        raise FgrError(f"found neither {MANIFEST_FILE} nor a {dataset_folder} folder under {root} "
                       f"(it holds: {', '.join(top[:8]) or 'nothing'}{' ...' if len(top) > 8 else ''}); expected the Kaggle "
                       f"layout ({dataset_folder}/{{train,validation,test}}/img/images/ beside Train_split.json, "
                       f"TestAll_index.csv, Test_element.csv) or a generated set (`fgr data synth sim-fabrics`)")
    else:
        ds = convert(root, spf, dataset_folder, gt_key, write_converted)
    if check_files:
        ds.check_files()
    return ds
