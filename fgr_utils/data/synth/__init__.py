"""Synthetic datasets that speak the real datasets' on-disk formats.

The layout follows the architecture:

* :mod:`.core` - the generator registry and :func:`synthesize` / :func:`require_synth` (run a
  generator into ``<data>/synth/<name>/<size>-seed<seed>/``, find a generated set);
* shared models: :mod:`.motifs` (procedural print motifs) and :mod:`.garments` (parametric garments:
  vocabulary, geometry, photo and sketch renderers);
* one generator module per dataset family, each registering its sets with :func:`register`:
  :mod:`.photo_landmarks` (``photo-landmarks``), :mod:`.fabrics` (``sim-fabrics``, ``sim-revisited``),
  :mod:`.sbir_garments` (``sbir-garments``, ``-xdog``, ``-canny``) and :mod:`.asfr_garments`
  (``asfr-garments``).

Importing this package imports every generator module, so :data:`GENERATORS` is complete (in that
order) as soon as ``fgr_utils.data.synth`` is imported.
"""
from __future__ import annotations

from fgr_utils.data.synth.core import (GENERATORS, MANIFEST, Generator, generated, generator, manifest, parse_count,
                                       register, require_synth, synth_root, synthesize)
# the generator modules, in registration order: importing one runs its @register calls
from fgr_utils.data.synth import photo_landmarks  # noqa: F401
from fgr_utils.data.synth import fabrics  # noqa: F401
from fgr_utils.data.synth import sbir_garments  # noqa: F401
from fgr_utils.data.synth import asfr_garments  # noqa: F401

__all__ = ["MANIFEST", "Generator", "GENERATORS", "register", "generator", "synth_root", "synthesize",
           "require_synth", "generated", "parse_count", "manifest"]
