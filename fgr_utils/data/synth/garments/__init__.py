"""A parametric garment model: what a garment is, its shape, and how it is photographed and sketched.

The sketch-based retrieval track needs product photos of garments with sketches of each drawn "by
different designers"; the attribute-retrieval track needs garments whose discrete attributes are known
exactly. One model serves both (the generators are :mod:`fgr_utils.data.synth.sbir_garments` and
:mod:`fgr_utils.data.synth.asfr_garments`):

* :mod:`.vocabulary` - :class:`Garment`, its attribute vocabulary :data:`ATTRIBUTES` and the rules
  between attributes; :func:`sample_garment` and :func:`vary_garment` draw garments;
* :mod:`.geometry` - :func:`garment_geometry`: the garment as polygons and polylines in one unit frame
  (outline, sleeves, collar, lapel, pockets, placket and buttons, seams, print clipped to the fabric);
* :mod:`.render` - :func:`render_photo` and :func:`render_sketch` (a :class:`SketchStyle`, one of the
  twelve :data:`DESIGNERS`) draw that *same* geometry, so a sketch is the photo's garment seen through
  a designer's hand; :class:`Pose` places it;
* :mod:`.edges` - :func:`xdog` and :func:`canny_sketch`: pseudo-sketches (edge maps) of a photo.

This package's namespace is that public interface; helpers stay in their modules.
"""
from __future__ import annotations

from fgr_utils.data.synth.garments.edges import canny_sketch, xdog
from fgr_utils.data.synth.garments.geometry import Geometry, Part, PrintElement, garment_geometry
from fgr_utils.data.synth.garments.render import (DESIGNERS, Pose, SketchStyle, garment_mask, render_photo,
                                                  render_sketch, sample_pose)
from fgr_utils.data.synth.garments.vocabulary import (ATTRIBUTES, CATEGORIES, CATEGORY_VALUES, COLOURS, DETAILS, NA,
                                                      Garment, sample_garment, vary_garment)

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "CATEGORY_VALUES", "COLOURS", "DETAILS", "NA", "Garment", "sample_garment",
    "vary_garment", "Part", "PrintElement", "Geometry", "garment_geometry", "Pose", "sample_pose", "garment_mask",
    "render_photo", "SketchStyle", "DESIGNERS", "render_sketch", "xdog", "canny_sketch",
]
