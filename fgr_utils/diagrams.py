"""Box-and-arrow diagrams of each method, drawn with matplotlib, for the notebooks' introductions.

One drawing function, :func:`pipeline`, places boxes on a grid of columns and rows and joins them
with arrows; :func:`draw` returns one of the named diagrams of :data:`DIAGRAMS` (``names()`` lists
them). The notebooks save theirs with the run: ``run.save_figure(diagrams.draw("arnet"), "diagram")``.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

from fgr_utils import viz  # noqa: F401  (selects a non-interactive backend when there is no display)
from fgr_utils.errors import FgrError

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

# Fill colours by the role of a box: what goes in, a processing step, a trained network, a loss,
# a measurement, and what comes out.
KINDS = {
    "data": "#dbe9f6",
    "step": "#f0f0f0",
    "model": "#fde4c8",
    "loss": "#f8d3d0",
    "metric": "#d9f0d3",
    "out": "#e8def2",
}
FONT = 8.0
MIN_FONT = 5.5


class Box(NamedTuple):
    """A box at grid column ``col`` and row ``row`` (row 0 on top), ``w`` columns wide and ``h``
    rows high; ``kind`` picks its colour (see ``KINDS``); ``dashed`` marks an optional step."""
    key: str
    label: str
    col: float
    row: float
    kind: str = "step"
    w: float = 1.0
    h: float = 1.0
    dashed: bool = False


class Arrow(NamedTuple):
    """An arrow from box ``src`` to box ``dst``; ``dashed`` for an optional path."""
    src: str
    dst: str
    dashed: bool = False


class Lane(NamedTuple):
    """A shaded band behind rows ``first``..``last`` with its label in the left margin."""
    label: str
    first: int
    last: int


class Diagram(NamedTuple):
    """What :func:`pipeline` draws: the arguments of one diagram."""
    boxes: Sequence[Box]
    arrows: Sequence[Arrow | tuple]
    title: str = ""
    lanes: Sequence[Lane | tuple] = ()
    figsize: tuple[float, float] = (10.0, 3.0)


# The share of a grid cell a box fills (the rest is room for arrows).
_BOX_W, _BOX_H = 0.8, 0.7
_GUTTER = 0.55  # columns of left margin for lane labels


def _edge_point(cx: float, cy: float, hw: float, hh: float, dx: float, dy: float) -> tuple[float, float]:
    """Where the ray from a box's centre in direction (dx, dy) leaves the box."""
    tx = hw / abs(dx) if dx else math.inf
    ty = hh / abs(dy) if dy else math.inf
    t = min(tx, ty)
    return cx + t * dx, cy + t * dy


def _endpoints(src, dst) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and end of an arrow between two boxes given as (cx, cy, half-width, half-height).

    Boxes that share a band of rows are joined by a horizontal arrow in the middle of that band,
    boxes that share a band of columns by a vertical one; other pairs centre to centre.
    """
    sx, sy, shw, shh = src
    tx, ty, thw, thh = dst
    top, bottom = max(sy - shh, ty - thh), min(sy + shh, ty + thh)
    left, right = max(sx - shw, tx - thw), min(sx + shw, tx + thw)
    if top < bottom and not left < right:
        y = (top + bottom) / 2
        sign = 1 if tx > sx else -1
        return (sx + sign * shw, y), (tx - sign * thw, y)
    if left < right and not top < bottom:
        x = (left + right) / 2
        sign = 1 if ty > sy else -1
        return (x, sy + sign * shh), (x, ty - sign * thh)
    dx, dy = tx - sx, ty - sy
    return _edge_point(sx, sy, shw, shh, dx, dy), _edge_point(tx, ty, thw, thh, -dx, -dy)


def _fit_text(fig, pairs) -> None:
    """Shrink each text until it fits inside its rectangle (display coordinates), down to MIN_FONT."""
    renderer = fig.canvas.get_renderer()
    for text, patch in pairs:
        limit = patch.get_window_extent(renderer)
        size = text.get_fontsize()
        while size > MIN_FONT:
            ext = text.get_window_extent(renderer)
            if ext.width <= limit.width * 0.94 and ext.height <= limit.height * 0.92:
                break
            size -= 0.25
            text.set_fontsize(size)


def pipeline(boxes: Sequence[Box], arrows: Sequence[Arrow | tuple], *, title: str = "",
             lanes: Sequence[Lane | tuple] = (), figsize: tuple[float, float] = (10.0, 3.0)):
    """Draw a box-and-arrow diagram and return its Figure.

    ``boxes`` sit on a grid (``Box.col``, ``Box.row``, row 0 on top); ``arrows`` join box keys
    (``Arrow`` or a tuple ``(src, dst[, dashed])``); ``lanes`` shade groups of rows, labelled in
    the left margin. Box labels are shrunk to fit their box, so keep them short (use ``\\n``).
    """
    by_key = {}
    for b in boxes:
        if b.key in by_key:
            raise FgrError(f"diagram box {b.key!r} is defined twice; give every box its own key")
        if b.kind not in KINDS:
            raise FgrError(f"diagram box {b.key!r} has kind {b.kind!r}; use one of {', '.join(KINDS)}")
        by_key[b.key] = b
    arrows = [a if isinstance(a, Arrow) else Arrow(*a) for a in arrows]
    lanes = [lane if isinstance(lane, Lane) else Lane(*lane) for lane in lanes]
    for a in arrows:
        for end in (a.src, a.dst):
            if end not in by_key:
                raise FgrError(f"diagram arrow {a.src!r} -> {a.dst!r} names no box {end!r}; "
                               f"boxes: {', '.join(by_key)}")
    ncols = max(b.col + b.w for b in boxes)
    nrows = max(b.row + b.h for b in boxes)
    left = -_GUTTER if lanes else 0.0

    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(left, ncols)
    ax.set_ylim(nrows, 0)  # row 0 on top
    ax.set_axis_off()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.88 if title else 0.98)

    to_fit = []
    for i, lane in enumerate(lanes):
        band = Rectangle((left, lane.first), ncols - left, lane.last - lane.first + 1,
                         facecolor="#f7f7f7" if i % 2 == 0 else "#ececec", edgecolor="none", zorder=0)
        ax.add_patch(band)
        holder = Rectangle((left, lane.first), _GUTTER, lane.last - lane.first + 1, fill=False,
                           edgecolor="none")
        ax.add_patch(holder)
        text = ax.text(left + _GUTTER / 2, lane.first + (lane.last - lane.first + 1) / 2, lane.label,
                       ha="center", va="center", fontsize=FONT - 0.5, style="italic", color="#555555", zorder=1)
        to_fit.append((text, holder))

    geometry = {}
    for b in boxes:
        cx, cy = b.col + b.w / 2, b.row + b.h / 2
        hw = (b.w - (1 - _BOX_W)) / 2
        hh = (b.h - (1 - _BOX_H)) / 2
        geometry[b.key] = (cx, cy, hw, hh)
        patch = FancyBboxPatch((cx - hw, cy - hh), 2 * hw, 2 * hh, boxstyle="round,pad=0,rounding_size=0.06",
                               facecolor=KINDS[b.kind], edgecolor="#444444", linewidth=0.9,
                               linestyle="--" if b.dashed else "-", zorder=2)
        ax.add_patch(patch)
        text = ax.text(cx, cy, b.label, ha="center", va="center", fontsize=FONT, zorder=3, linespacing=1.15)
        to_fit.append((text, patch))

    for a in arrows:
        start, end = _endpoints(geometry[a.src], geometry[a.dst])
        arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, linewidth=1.0, color="#333333",
                                linestyle="--" if a.dashed else "-", shrinkA=1, shrinkB=1, zorder=1.5)
        ax.add_patch(arrow)

    if title:
        fig.suptitle(title, fontsize=FONT + 2)
    _fit_text(fig, to_fit)
    return fig


# --------------------------------------------------------------------------- the named diagrams

def _datasets():
    boxes = [
        Box("net", "HTTP / Kaggle /\nGoogle Drive", 0, 0, "data"),
        Box("manual", "manual download\n(account or\nagreement)", 0, 1, "data"),
        Box("synth", "synthetic\ngenerators\n(fixed seed)", 0, 2, "data"),
        Box("fetch", "download to a\ntemporary name:\nresume, checksum,\nsafe extract", 1, 0),
        Box("place", "you place the files\n(fgr prints the\nsteps and folder)", 1, 1),
        Box("gen", "generate into a\ntemporary folder\n(skipped if present)", 1, 2),
        Box("verify", "check layout and\ncounts, then rename\ninto place\n(fgr data verify)", 2, 0, h=3),
        Box("format", "the real dataset's\non-disk format\n(gnd pickle, A/B\nfolders, split files)", 3, 0, "data", h=3),
        Box("reader", "one reader per\ndataset family\n(real = synthetic)", 4, 0, "model", h=3),
        Box("nbs", "notebooks: same\ncode on the\nstand-in and on\nthe real set", 5, 0, "out", h=3),
    ]
    arrows = [("net", "fetch"), ("manual", "place"), ("synth", "gen"), ("fetch", "verify"), ("place", "verify"),
              ("gen", "verify"), ("verify", "format"), ("format", "reader"), ("reader", "nbs")]
    lanes = [("real\nsets", 0, 1), ("stand-\nins", 2, 2)]
    return Diagram(boxes, arrows, lanes=lanes, figsize=(10, 3.2),
                    title="Datasets: every source ends in the real format, read by one reader")


def _fabric_global():
    boxes = [
        Box("triplet", "triplet: motif,\nfabric with its\ncategory (+),\nfabric without (−)", 0, 0, "data"),
        Box("test", "test query motifs\nand test fabrics", 0, 1, "data"),
        Box("backbone", "one shared\nbackbone (ViT):\nimage → CLS token", 1, 0, "model", h=2),
        Box("head", "MLP head\nCLS → 256-d\ndescriptor", 2, 0, "model", h=2),
        Box("loss", "cosine triplet loss\n(margin 0.2):\ncategory level", 3, 0, "loss"),
        Box("index", "L2-normalise,\nindex the fabrics\n(cosine = dot)", 3, 1),
        Box("shortlist", "cosine top-K\nshortlist\nper query", 4, 1, "out"),
        Box("eval", "full-ranking mAP\n+ AP@k, P@k\n→ stage 2 (nb 11)", 5, 1, "metric"),
    ]
    arrows = [("triplet", "backbone"), ("test", "backbone"), ("backbone", "head"), ("head", "loss"),
              ("head", "index"), ("index", "shortlist"), ("shortlist", "eval")]
    lanes = [("train", 0, 0), ("search", 1, 1)]
    return Diagram(boxes, arrows, lanes=lanes,
                    title="Fabric stage 1: a global descriptor gives every query a cosine shortlist")


def _fabric_qga():
    boxes = [
        Box("query", "query motif", 0, 0, "data"),
        Box("cand", "shortlisted fabric\n(stage-1 top K)", 0, 1, "data"),
        Box("qenc", "backbone\n(once per query)", 1, 0, "model"),
        Box("cenc", "backbone\n(once per fabric)", 1, 1, "model"),
        Box("cls", "query CLS q", 2, 0),
        Box("tokens", "patch tokens T\n(cached on disk)", 2, 1),
        Box("attn", "attention (8 heads):\nq the query,\nT keys and values", 3, 1, "model"),
        Box("qproj", "query projection\n→ 256-d", 4, 0, "model"),
        Box("ctx", "attended context c\n→ 256-d", 4, 1, "model"),
        Box("cos", "cosine of the\ntwo projections", 5, 0, "metric", h=2),
        Box("rank", "re-ranked\nshortlist (tail\nkeeps stage-1\norder)", 6, 0, "out", h=2),
    ]
    arrows = [("query", "qenc"), ("cand", "cenc"), ("qenc", "cls"), ("cenc", "tokens"),
              ("cls", "attn"), ("tokens", "attn"), ("cls", "qproj"), ("attn", "ctx"),
              ("qproj", "cos"), ("ctx", "cos"), ("cos", "rank")]
    lanes = [("query", 0, 0), ("candi-\ndate", 1, 1)]
    return Diagram(boxes, arrows, lanes=lanes,
                    title="Fabric stage 2: query-guided attention re-scores the shortlist "
                          "(trained on motif-id triplets)")


def _landmarks():
    boxes = [
        Box("query", "query image\nand its box", 0, 0, "data"),
        Box("db", "database\n(whole images)", 0, 1, "data"),
        Box("gnd", "ground truth per\nquery (gnd pickle)", 0, 2, "data"),
        Box("crop", "crop to the box,\nscaled as the\nfull image", 1, 0),
        Box("global", "stage 1:\nglobal ranking\nof the whole\ndatabase", 2, 0, "model", h=2),
        Box("blind", "blind shortlist:\nraw global top K", 3, 0),
        Box("aware", "protocol-aware:\nthat protocol's junk\nmoved aside, top K", 3, 1),
        Box("emh", "Easy / Medium / Hard:\npositives and junk per query", 2, 2, w=3),
        Box("rerank", "stage 2 re-ranks\nthe top K; the tail\nkeeps global order", 4, 0, "model", h=2),
        Box("map", "mAP per protocol:\ntrapezoidal AP,\njunk deleted,\neach shortlist\nlabelled", 5, 0, "metric", h=3),
    ]
    arrows = [("query", "crop"), ("crop", "global"), ("db", "global"), ("gnd", "emh"), ("global", "blind"),
              ("global", "aware"), ("emh", "aware"), ("blind", "rerank"), ("aware", "rerank"), ("rerank", "map"),
              ("emh", "map")]
    return Diagram(boxes, arrows, figsize=(10, 3.3),
                    title="Landmarks: the two fabric stages under the revisited Oxford/Paris protocol")


def _arnet():
    boxes = [
        Box("sketch", "sketch + an\naugmented view", 0, 0, "data"),
        Box("photo", "photo + an\naugmented view", 0, 1, "data"),
        Box("svit", "sketch ViT\n(its own weights)", 1, 0, "model"),
        Box("pvit", "photo ViT\n(its own weights)", 1, 1, "model"),
        Box("smstr", "+ MSTR (arnet_mstr):\npatch tokens at 3\nscales → CLS;\nrelation loss", 2, 0, "loss", dashed=True),
        Box("pmstr", "+ MSTR (arnet_mstr):\npatch tokens at 3\nscales → CLS;\nrelation loss", 2, 1, "loss", dashed=True),
        Box("shead", "CLS → 512-d\nhead", 3, 0, "model"),
        Box("phead", "CLS → 512-d\nhead", 3, 1, "model"),
        Box("ntx", "4 × NT-Xent (τ 0.07):\nsketch vs photo\n(head, CLS); each vs\nits augmented view", 4, 0,
            "loss", h=2),
        Box("tri", "triplet baseline:\nsketch, its photo,\nanother photo", 0, 2, "data"),
        Box("siam", "one ViT shared\nby both (siamese)", 1, 2, "model"),
        Box("triloss", "triplet loss\n(margin 0.3)", 3, 2, "loss"),
        Box("acc", "after training,\nAcc@k: is the\nsketch's photo in\nthe top k of all\ntest photos?", 5, 0, "metric", h=3),
    ]
    arrows = [("sketch", "svit"), ("photo", "pvit"), ("svit", "smstr"), ("pvit", "pmstr"), ("smstr", "shead"),
              ("pmstr", "phead"), ("shead", "ntx"), ("phead", "ntx"), ("tri", "siam"), ("siam", "triloss"),
              ("ntx", "acc", True), ("triloss", "acc", True)]
    lanes = [("sketch", 0, 0), ("photo", 1, 1), ("base-\nline", 2, 2)]
    return Diagram(boxes, arrows, lanes=lanes, figsize=(10, 3.3),
                    title="ARNet: two encoders aligned by NT-Xent; MSTR recycles patch tokens")


def _sbir_eval():
    boxes = [
        Box("runs", "runs of\n20_sbir_train:\ntriplet, ARNet,\nARNet + MSTR", 0, 0, "data", h=3),
        Box("rec", "each run's\nmetrics.json", 1, 0, "data"),
        Box("emb", "test sketch and\nphoto embeddings", 1, 1),
        Box("att", "attention of every\nlayer and head\n(test images)", 1, 2),
        Box("acc", "Acc@1/5/10,\nbest and last epoch", 2, 0, "metric"),
        Box("tsne", "one joint t-SNE\n(PCA init, fixed seed)", 2, 1, "metric"),
        Box("dist", "mean attention\ndistance per layer", 2, 2, "metric"),
        Box("accq", "table: the methods\nside by side", 3, 0, "out"),
        Box("tsneq", "does each sketch lie\nby its own photo?", 3, 1, "out"),
        Box("distq", "token-index and pixel\nmetrics, labelled", 3, 2, "out"),
    ]
    arrows = [("runs", "rec"), ("runs", "emb"), ("runs", "att"), ("rec", "acc"), ("emb", "tsne"), ("att", "dist"),
              ("acc", "accq"), ("tsne", "tsneq"), ("dist", "distq")]
    return Diagram(boxes, arrows, figsize=(10, 3.0),
                    title="Notebook 21: what the trained sketch-retrieval networks do")


def _asfr_methods():
    boxes = [
        Box("image", "image", 0, 0, "data", h=4),
        Box("trunk", "shared trunk\n(ResNet-50 to\nlayer3; demo:\nfrozen EfficientNet\n+ 1 trained stage)", 1, 0,
            "model", h=4),
        Box("asen", "ASENet_V2 / AG-MAN:\nattribute-conditioned\nspatial + channel\nattention", 2, 0, "model"),
        Box("attr", "attribute (e.g.\nsleeve length) →\nlearned embedding", 2, 1, "data"),
        Box("rpf", "RPF: region branch\n+ patch ViT on the\nattention's crop,\nfused by β", 2, 2, "model"),
        Box("global", "global floor:\nthe attribute\nis ignored", 2, 3, "model", dashed=True),
        Box("specific", "one embedding per\n(image, attribute),\nL2-normalised", 3, 0, "out", h=3),
        Box("generic", "one embedding\nfor every attribute", 3, 3, "out"),
        Box("map", "rank that attribute's\ncandidates by cosine;\nrelevant = same value\n→ MAP per attribute",
            4, 0, "metric", h=4),
    ]
    arrows = [("image", "trunk"), ("trunk", "asen"), ("trunk", "rpf"), ("trunk", "global"), ("attr", "asen"),
              ("attr", "rpf"), ("asen", "specific"), ("rpf", "specific"), ("global", "generic"),
              ("specific", "map"), ("generic", "map")]
    return Diagram(boxes, arrows, figsize=(10, 3.6),
                    title="Attribute-specific retrieval: the attribute steers where and what the network looks at")


def _asfr_eval():
    boxes = [
        Box("runs", "runs of\n30_asfr_train:\nglobal, ASENet_V2,\nAG-MAN, RPF", 0, 0, "data", h=3),
        Box("map", "MAP per attribute\n(test split)", 1, 0, "metric"),
        Box("trip", "Zappos-style\ntriplet lists", 1, 1, "data"),
        Box("img", "one test image,\nasked about every\nattribute", 1, 2, "data"),
        Box("overall", "overall: query-weighted\n(official) and macro,\nlabelled", 2, 0, "metric"),
        Box("tacc", "triplet accuracy:\ncloser to c than to b?", 2, 1, "metric"),
        Box("attn", "each model's\nattention map per\nattribute", 2, 2, "metric"),
        Box("gain", "gain over the global\nfloor; published\nnumbers beside", 3, 0, "out"),
        Box("taccq", "per condition\nand overall", 3, 1, "out"),
        Box("attnq", "hem for a length,\nneck for a collar?", 3, 2, "out"),
    ]
    arrows = [("runs", "map"), ("runs", "trip"), ("runs", "img"), ("map", "overall"), ("trip", "tacc"),
              ("img", "attn"), ("overall", "gain"), ("tacc", "taccq"), ("attn", "attnq")]
    return Diagram(boxes, arrows, figsize=(10, 3.0),
                    title="Notebook 31: the attribute-specific methods side by side")


def _index():
    boxes = [
        Box("data", "a collection:\nn clustered unit\nvectors, or a\ntrained run's\ntest set", 0, 0, "data", h=3),
        Box("exact", "exact: NumPy,\nFAISS Flat (truth)", 1, 0, "model"),
        Box("ann", "ANN: IVF, HNSW,\nIVF-PQ, LSH", 1, 1, "model"),
        Box("kd", "KD-tree\n(negative control)", 1, 2, "model"),
        Box("build", "build each\nindex once:\ntime, memory", 2, 0, h=3),
        Box("search", "search all queries,\nsweeping nprobe /\nefSearch / refine", 3, 0, h=3),
        Box("recall", "recall@10 against\nexact, queries/s", 4, 0, "metric"),
        Box("best", "fastest index at\nrecall@10 ≥ 0.95", 4, 1, "out"),
        Box("track", "a run's own metric\n(MAP, mAP, Acc@k)\nunder each index", 4, 2, "metric"),
    ]
    arrows = [("data", "exact"), ("data", "ann"), ("data", "kd"), ("exact", "build"), ("ann", "build"),
              ("kd", "build"), ("build", "search"), ("search", "recall"), ("search", "best"), ("search", "track")]
    return Diagram(boxes, arrows, figsize=(10, 3.0),
                    title="Search at scale: every index built and searched, measured against exact search")


def _report():
    boxes = [
        Box("cmd", "fgr reproduce\n--profile P", 0, 0, "data", h=2),
        Box("order", "notebooks in\ndependency order\n(up-to-date runs\nskipped)", 1, 0, h=2),
        Box("params", "papermill runs each\nwith params/P/*.yaml", 2, 0, "model", h=2),
        Box("metrics", "runs/P/<run>/\nmetrics.json", 3, 0, "data"),
        Box("figs", "figures/*.png +\nexecuted notebook", 3, 1, "data"),
        Box("report", "REPORT.md /\nREPORT.html:\none table per\nprotocol", 4, 0, "out", h=2),
        Box("published", "published numbers\nbeside ours", 5, 0, "metric", h=2),
    ]
    arrows = [("cmd", "order"), ("order", "params"), ("params", "metrics"), ("params", "figs"),
              ("metrics", "report"), ("figs", "report"), ("published", "report")]
    return Diagram(boxes, arrows, figsize=(10, 2.6),
                    title="fgr reproduce: every notebook of a profile, one report")


DIAGRAMS: dict[str, Callable[[], Diagram]] = {
    "datasets": _datasets,
    "fabric_global": _fabric_global,
    "fabric_qga": _fabric_qga,
    "landmarks": _landmarks,
    "arnet": _arnet,
    "sbir_eval": _sbir_eval,
    "asfr_methods": _asfr_methods,
    "asfr_eval": _asfr_eval,
    "index": _index,
    "report": _report,
}


def names() -> list[str]:
    """The names :func:`draw` knows."""
    return list(DIAGRAMS)


def spec(name: str) -> Diagram:
    """The boxes, arrows, lanes and title of the named diagram."""
    if name not in DIAGRAMS:
        raise FgrError(f"no diagram named {name!r}; known diagrams: {', '.join(DIAGRAMS)}")
    return DIAGRAMS[name]()


def draw(name: str):
    """The named diagram as a matplotlib Figure (close it when done)."""
    d = spec(name)
    return pipeline(d.boxes, d.arrows, title=d.title, lanes=d.lanes, figsize=d.figsize)
