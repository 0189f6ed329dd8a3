"""What a garment is: the attribute vocabulary, the rules that tie attributes together, and random draws.

A :class:`Garment` is a frozen record of one value of every attribute of :data:`ATTRIBUTES` (the
attribute-retrieval track enumerates them) plus two continuous ``proportions`` (width, length
factors). :func:`sample_garment` draws one, optionally with some attributes fixed, and
:func:`vary_garment` draws a garment that differs from another in chosen details (how the sketch sets
build families of look-alike garments).

Every attribute has a fixed tuple of values; ``"n/a"`` (first in the tuple, like FashionAI's
"Invisible") means the attribute does not apply to the garment (sleeves of a skirt, the lapel of a
shirt) or has no visible effect (the print ``accent`` colour of a solid garment). Which values a
category takes is :data:`CATEGORY_VALUES`; a few rules tie attributes together (a notched or shawl
lapel is the coat's collar, so ``collar`` is "none" and the neckline "v"; a mandarin, peter-pan or
turtle collar sits on a round neckline; a hooded or turtle-neck t-shirt has no button placket; solid
print <=> accent "n/a"). ``Garment(...)`` checks all of them and raises :class:`FgrError` otherwise,
so no renderer ever sees a garment that cannot be drawn.

Colours are the names of the shared print palette of :mod:`fgr_utils.data.synth.motifs`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import numpy as np

from fgr_utils.data.synth.motifs import PALETTE
from fgr_utils.errors import FgrError

__all__ = ["NA", "CATEGORIES", "COLOURS", "COLOUR_RGB", "ATTRIBUTES", "CATEGORY_VALUES", "NECKLINES_FOR_COLLAR",
           "LAPELS", "DETAILS", "Garment", "sample_garment", "vary_garment", "luminance"]

NA = "n/a"
CATEGORIES = ("tshirt", "shirt", "dress", "coat", "skirt", "trousers")
COLOURS = tuple(name for name, _ in PALETTE)
COLOUR_RGB = dict(PALETTE)

#: The attribute vocabulary: name -> values (the order of :class:`Garment`'s fields).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "silhouette": ("fitted", "straight", "a-line", "flared"),  # trousers: skinny, straight, wide, flared
    "length": ("waist", "hip", "thigh", "knee", "calf", "ankle"),  # body level of the hem
    "sleeve_length": (NA, "sleeveless", "cap", "short", "elbow", "three-quarter", "long"),
    "collar": (NA, "none", "shirt", "mandarin", "peter-pan", "turtle", "hood"),
    "neckline": (NA, "round", "v", "square", "boat"),
    "lapel": (NA, "none", "notched", "shawl"),
    "pockets": ("none", "chest", "side", "patch"),
    "buttons": ("none", "2", "3", "4", "5", "6"),  # number of buttons on the front placket
    "print": ("solid", "stripes", "dots", "checks", "floral"),
    "colour": COLOURS,
    "accent": (NA,) + COLOURS,  # the print's colour
}

_ALL_SIL = ATTRIBUTES["silhouette"]
_TOP_SLEEVES = ("sleeveless", "cap", "short", "elbow", "three-quarter", "long")
_NO_TOP = {"sleeve_length": (NA,), "collar": (NA,), "neckline": (NA,), "lapel": (NA,)}

#: Per category, the values each shape attribute may take (print, colour and accent are free).
CATEGORY_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "tshirt": {"silhouette": _ALL_SIL, "length": ("waist", "hip", "thigh"), "sleeve_length": _TOP_SLEEVES,
               "collar": ("none", "shirt", "turtle", "hood"), "neckline": ("round", "v", "square", "boat"),
               "lapel": (NA,), "pockets": ("none", "chest"), "buttons": ("none", "2", "3")},
    "shirt": {"silhouette": ("fitted", "straight", "a-line"), "length": ("waist", "hip", "thigh"),
              "sleeve_length": ("sleeveless", "short", "elbow", "three-quarter", "long"),
              "collar": ("none", "shirt", "mandarin", "peter-pan"), "neckline": ("round", "v", "square", "boat"),
              "lapel": (NA,), "pockets": ("none", "chest"), "buttons": ("none", "3", "4", "5", "6")},
    "dress": {"silhouette": _ALL_SIL, "length": ("thigh", "knee", "calf", "ankle"), "sleeve_length": _TOP_SLEEVES,
              "collar": ("none", "shirt", "mandarin", "peter-pan"), "neckline": ("round", "v", "square", "boat"),
              "lapel": (NA,), "pockets": ("none", "side", "patch"), "buttons": ("none", "3", "4", "5", "6")},
    "coat": {"silhouette": _ALL_SIL, "length": ("hip", "thigh", "knee", "calf", "ankle"),
             "sleeve_length": ("sleeveless", "three-quarter", "long"), "collar": ("none", "shirt", "mandarin", "hood"),
             "neckline": ("round", "v"), "lapel": ("none", "notched", "shawl"), "pockets": ("none", "side", "patch"),
             "buttons": ("none", "2", "3", "4", "5", "6")},
    "skirt": {"silhouette": _ALL_SIL, "length": ("thigh", "knee", "calf", "ankle"), **_NO_TOP,
              "pockets": ("none", "side", "patch"), "buttons": ("none", "3", "4", "5")},
    "trousers": {"silhouette": _ALL_SIL, "length": ("thigh", "knee", "calf", "ankle"), **_NO_TOP,
                 "pockets": ("none", "side", "patch"), "buttons": ("none",)},
}

#: The necklines a collar can sit on.
NECKLINES_FOR_COLLAR = {"none": ("round", "v", "square", "boat"), "shirt": ("round", "v"), "mandarin": ("round",),
                        "peter-pan": ("round",), "turtle": ("round",), "hood": ("round", "v"), NA: (NA,)}
LAPELS = ("notched", "shawl")
#: Detail attributes that vary inside a family (and what must be redrawn with them).
DETAILS = ("sleeve_length", "collar", "neckline", "lapel", "pockets", "buttons", "print")
_DEPENDENTS = {"collar": ("neckline",), "lapel": ("collar", "neckline"), "print": ("accent",), "neckline": ("collar",)}


def _problems(values: Mapping[str, str]) -> list[str]:
    """Rule violations among the attributes present in ``values`` (missing ones are not checked)."""
    out = []
    cat = values.get("category")
    if cat in CATEGORY_VALUES:
        for name, allowed in CATEGORY_VALUES[cat].items():
            v = values.get(name)
            if v is not None and v not in allowed:
                out.append(f"a {cat} cannot have {name}={v!r} (it takes {', '.join(allowed)})")
    collar, neck, lapel = values.get("collar"), values.get("neckline"), values.get("lapel")
    if collar in NECKLINES_FOR_COLLAR and neck is not None and neck not in NECKLINES_FOR_COLLAR[collar]:
        out.append(f"collar={collar!r} needs neckline in {', '.join(NECKLINES_FOR_COLLAR[collar])}, not {neck!r}")
    if lapel in LAPELS:
        if collar is not None and collar != "none":
            out.append(f"a {lapel} lapel is the collar: use collar='none', not {collar!r}")
        if neck is not None and neck != "v":
            out.append(f"a {lapel} lapel opens in a v: use neckline='v', not {neck!r}")
    if cat == "tshirt" and collar in ("turtle", "hood") and values.get("buttons", "none") != "none":
        out.append(f"a t-shirt with collar={collar!r} has no button placket: use buttons='none'")
    pr, acc, col = values.get("print"), values.get("accent"), values.get("colour")
    if pr == "solid" and acc is not None and acc != NA:
        out.append("a solid garment has no print colour: use accent='n/a'")
    if pr is not None and pr != "solid" and acc == NA:
        out.append(f"print={pr!r} needs an accent colour (one of the colours), not 'n/a'")
    if acc is not None and acc == col:
        out.append(f"the accent colour must differ from the garment colour {col!r}")
    return out


def _check_vocabulary(values: Mapping[str, object], where: str) -> None:
    for name, v in values.items():
        if name not in ATTRIBUTES:
            raise FgrError(f"{where}: unknown garment attribute {name!r}; attributes are {', '.join(ATTRIBUTES)}")
        if v not in ATTRIBUTES[name]:
            raise FgrError(f"{where}: {name}={v!r} is not a value of {name}; use one of {', '.join(ATTRIBUTES[name])}")


@dataclass(frozen=True)
class Garment:
    """One garment: a value of every attribute in :data:`ATTRIBUTES` plus (width, length) proportions.

    The proportions (about 0.92-1.08) stretch the whole garment; they are not attributes, so that two
    garments can differ in shape without differing in any attribute a retrieval track would name.
    """

    category: str
    silhouette: str
    length: str
    sleeve_length: str
    collar: str
    neckline: str
    lapel: str
    pockets: str
    buttons: str
    print: str
    colour: str
    accent: str
    proportions: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        attrs = self.attributes()
        _check_vocabulary(attrs, "Garment")
        probs = _problems(attrs)
        if probs:
            raise FgrError(f"Garment: {probs[0]}")
        try:
            wf, lf = (float(x) for x in self.proportions)
        except (TypeError, ValueError):
            raise FgrError("Garment: proportions must be two numbers (width, length), e.g. (1.0, 1.0)") from None
        if not (0.5 <= wf <= 2.0 and 0.5 <= lf <= 2.0):
            raise FgrError(f"Garment: proportions {self.proportions} out of range; use factors between 0.5 and 2")
        object.__setattr__(self, "proportions", (wf, lf))

    def attributes(self) -> dict[str, str]:
        """The discrete attributes as a dict (name -> value), in :data:`ATTRIBUTES` order."""
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def to_json(self) -> dict:
        return {"attributes": self.attributes(), "proportions": [round(x, 4) for x in self.proportions]}

    @classmethod
    def from_json(cls, d: Mapping) -> "Garment":
        return cls(**d["attributes"], proportions=tuple(d.get("proportions", (1.0, 1.0))))

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLOUR_RGB[self.colour]

    @property
    def accent_rgb(self) -> tuple[int, int, int]:
        return COLOUR_RGB.get(self.accent, self.rgb)


_SAMPLE_ORDER = ("category", "silhouette", "length", "sleeve_length", "lapel", "collar", "neckline", "pockets",
                 "buttons", "print", "colour", "accent")


def luminance(c: Sequence[int]) -> float:
    """Brightness of an RGB colour (Rec. 601 weights): how far apart a print and its ground look."""
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _weights(name: str, opts: list[str], values: Mapping[str, str]) -> np.ndarray:
    if name == "print":  # plain garments are the most common
        w = np.array([0.36 if v == "solid" else 0.16 for v in opts])
    elif name == "accent" and "colour" in values:  # prefer a print that shows
        base = luminance(COLOUR_RGB[values["colour"]])
        w = np.array([1e-3 if v == NA else 0.05 + min(abs(luminance(COLOUR_RGB[v]) - base), 120.0) for v in opts])
    else:
        w = np.ones(len(opts))
    return w / w.sum()


def sample_garment(rng: np.random.Generator, proportions: tuple[float, float] | None = None, **fixed: str) -> Garment:
    """Draw a garment, uniformly over the allowed values of each attribute, with ``fixed`` values kept.

    Attributes are drawn in a fixed order; each draw only considers values that break no rule together
    with the values drawn so far *and* the fixed ones, so any consistent set of fixed values can be met.
    Raises :class:`FgrError` for an unknown attribute, a value outside :data:`ATTRIBUTES`, or fixed
    values that contradict each other.
    """
    _check_vocabulary(fixed, "sample_garment")
    probs = _problems(fixed)
    if probs:
        raise FgrError(f"sample_garment: {probs[0]}")
    for _ in range(20):
        values: dict[str, str] = {}
        for name in _SAMPLE_ORDER:
            if name in fixed:
                values[name] = fixed[name]
                continue
            opts = [v for v in ATTRIBUTES[name] if not _problems({**fixed, **values, name: v})]
            if not opts:
                break
            values[name] = opts[int(rng.choice(len(opts), p=_weights(name, opts, values)))]
        else:
            props = proportions if proportions is not None else (
                round(float(rng.uniform(0.92, 1.08)), 3), round(float(rng.uniform(0.94, 1.06)), 3))
            return Garment(**values, proportions=props)
    raise FgrError(f"sample_garment: no garment has all of {fixed}; fix fewer attributes")


def vary_garment(base: Garment, rng: np.random.Generator, change: Sequence[str]) -> Garment | None:
    """A garment like ``base`` whose ``change`` attributes differ (their dependents may follow); None if impossible."""
    free = set(change)
    for c in change:
        free.update(_DEPENDENTS.get(c, ()))
    fixed = {k: v for k, v in base.attributes().items() if k not in free}
    for _ in range(12):
        try:
            g = sample_garment(rng, proportions=base.proportions, **fixed)
        except FgrError:
            return None
        if all(getattr(g, c) != getattr(base, c) for c in change):
            return g
    return None



_FIELDS = tuple(f.name for f in fields(Garment))
assert _FIELDS[:-1] == tuple(ATTRIBUTES), "Garment's fields must follow ATTRIBUTES"
