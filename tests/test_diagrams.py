"""The method diagrams: every named diagram draws its boxes and arrows, readably; bad names fail clearly."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from fgr_utils import diagrams
from fgr_utils.diagrams import Arrow, Box, Lane
from fgr_utils.errors import FgrError

# Names the notebooks (and the lead's and other helpers' notebooks) draw.
USED = ["datasets", "fabric_global", "fabric_qga", "landmarks", "arnet", "sbir_eval", "asfr_methods", "asfr_eval",
        "index", "report"]


@pytest.fixture
def figures():
    """Figures drawn by a test, closed afterwards even when it fails."""
    drawn = []
    yield drawn
    for fig in drawn:
        plt.close(fig)


def test_every_used_name_is_registered():
    assert set(USED) <= set(diagrams.names())


@pytest.mark.parametrize("name", USED)
def test_diagram_draws_its_boxes_and_arrows(name, figures):
    spec = diagrams.spec(name)
    fig = diagrams.draw(name)
    figures.append(fig)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    for box in spec.boxes:
        assert box.label in texts, f"{name}: box {box.key!r} has no label text"
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(arrows) == len(spec.arrows) > 0
    assert len(boxes) == len(spec.boxes)
    assert fig._suptitle is not None and fig._suptitle.get_text() == spec.title != ""
    width, height = fig.get_size_inches()
    assert width == pytest.approx(10) and 2.5 <= height <= 4


@pytest.mark.parametrize("name", USED)
def test_diagram_text_is_readable(name, figures):
    """Every label fits inside its box at a legible size, and no two texts overlap."""
    spec = diagrams.spec(name)
    fig = diagrams.draw(name)
    figures.append(fig)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    labels = ax.texts[len(spec.lanes):len(spec.lanes) + len(boxes)]  # lane labels come first, then the boxes'
    assert [t.get_text() for t in labels] == [b.label for b in spec.boxes]
    for text, patch in zip(labels, boxes):
        inner, outer = text.get_window_extent(renderer), patch.get_window_extent(renderer)
        assert outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1, \
            f"{name}: {text.get_text()!r} spills out of its box"
        assert text.get_fontsize() >= diagrams.MIN_FONT
    extents = [(t.get_text(), t.get_window_extent(renderer)) for t in [*ax.texts, fig._suptitle]]
    for i, (a, ea) in enumerate(extents):
        for b, eb in extents[i + 1:]:
            assert not ea.overlaps(eb), f"{name}: {a!r} overlaps {b!r}"
    # no box overlaps another box
    rects = [p.get_window_extent(renderer) for p in boxes]
    for i, ra in enumerate(rects):
        for rb in rects[i + 1:]:
            assert not ra.overlaps(rb), f"{name}: two boxes overlap"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(FgrError) as err:
        diagrams.draw("fabric")
    message = str(err.value)
    assert "'fabric'" in message
    for name in USED:
        assert name in message
    assert "\n" not in message


def test_pipeline_routes_arrows_between_neighbours_straight(figures):
    boxes = [Box("a", "in", 0, 0, "data"), Box("b", "tall\nstep", 1, 0, h=2), Box("c", "below", 1, 2, "metric"),
             Box("d", "corner", 2, 3)]
    fig = diagrams.pipeline(boxes, [("a", "b"), Arrow("b", "c", dashed=True), ("c", "d")], title="toy",
                            lanes=[Lane("top", 0, 1), ("bottom", 2, 3)])
    figures.append(fig)
    ax = fig.axes[0]
    (ab, bc, cd) = [p._posA_posB for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert ab[0][1] == ab[1][1] == pytest.approx(0.5)  # same band of rows: horizontal, through row 0's middle
    assert bc[0][0] == bc[1][0] == pytest.approx(1.5)  # same column: vertical
    assert bc[0][1] < bc[1][1]  # downwards (row 0 is on top)
    assert cd[0][0] < cd[1][0] and cd[0][1] < cd[1][1]  # neither: corner to corner, right and down
    styles = [p.get_linestyle() for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert styles[0] == "-" and styles[1] == "--"  # the optional path is dashed
    texts = [t.get_text() for t in ax.texts]
    assert {"in", "tall\nstep", "below", "corner", "top", "bottom"} <= set(texts)


def test_pipeline_shrinks_a_long_label_to_fit(figures):
    long = "a label far too long for one small box in a wide figure " * 2
    fig = diagrams.pipeline([Box("a", long, 0, 0), Box("b", "short", 1, 0)], [("a", "b")])
    figures.append(fig)
    ax = fig.axes[0]
    by_text = {t.get_text(): t for t in ax.texts}
    assert by_text[long].get_fontsize() < by_text["short"].get_fontsize() == diagrams.FONT


def test_pipeline_refuses_bad_specs():
    open_before = plt.get_fignums()
    with pytest.raises(FgrError, match="names no box 'x'"):
        diagrams.pipeline([Box("a", "A", 0, 0)], [("a", "x")])
    with pytest.raises(FgrError, match="defined twice"):
        diagrams.pipeline([Box("a", "A", 0, 0), Box("a", "B", 1, 0)], [])
    with pytest.raises(FgrError, match="kind 'shiny'"):
        diagrams.pipeline([Box("a", "A", 0, 0, "shiny")], [])
    assert plt.get_fignums() == open_before  # refused before any figure is opened
