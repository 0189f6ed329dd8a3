"""An interactive retrieval browser shared by the fabric, sketch and attribute notebooks.

``retrieval_browser(queries, rankings, hits)`` shows one query at a time with its ranked results
(hits framed green, misses red) and, when the track has them, attention maps over the query and the
results. In JupyterLab it is a small widget: pick the query, set how many results to show, switch the
attention on or off, and the figure is redrawn. Under ``fgr run`` (papermill) there is no one to
click, so it falls back to static figures of the first few queries, which the notebook can also save
into the run folder: the executed notebook and the run's figures then show the same thing.

The drawing is the kit's own figure code: :func:`fgr_utils.viz.retrieval_grid` for the results and
:func:`fgr_utils.viz.attention_overlays` for the attention. Each track shapes its data for the browser
(``fabric.browser_inputs``, ``sbir.browser_inputs``, ``asfr.browser_inputs``).
"""
from __future__ import annotations

import io
import numbers
import os
from typing import Any, Callable, Sequence

from fgr_utils import viz
from fgr_utils.errors import FgrError

Heatmap = Any  # a 2-D array (one weight per cell of the feature grid), or None for "no map here"


def interactive_available() -> bool:
    """True only in a live Jupyter kernel with ipywidgets installed and outside the fgr runner.

    ``fgr run`` / ``fgr reproduce`` set ``FGR_NOTEBOOK`` for the notebook they execute; nobody can
    move a slider there, so the browser draws static figures instead.
    """
    if os.environ.get("FGR_NOTEBOOK"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class Browser:
    """What :func:`retrieval_browser` returns: its static figures, and the widget when interactive.

    ``figures`` maps a name to each static figure (``<name>`` for the results of the first
    ``static_queries`` queries, ``<name>-attention-q<i>`` for the attention of query ``i``).
    ``current`` holds the figures of the last :meth:`draw` (the query picked in the widget).
    ``controls`` are the widgets by role (``query``, ``k``, ``attention``), ``widget`` the whole box;
    both are empty / None in static mode. :meth:`show` displays the widget or the static figures.
    """

    def __init__(self, queries, rankings, hits, *, query_titles, attention, query_attention, load, title):
        self.queries, self.rankings, self.hits = queries, rankings, hits
        self.query_titles = query_titles
        self.attention, self.query_attention = attention, query_attention
        self.load = load or (lambda item: item)
        self.title = title
        self.figures: dict[str, Any] = {}
        self.current: dict[str, Any] = {}
        self.controls: dict[str, Any] = {}
        self.widget = None
        self._png: dict[str, bytes] = {}
        self._pictures = None

    @property
    def has_attention(self) -> bool:
        return self.attention is not None or self.query_attention is not None

    @property
    def depth(self) -> int:
        return max(len(r) for r in self.rankings)

    # drawing ------------------------------------------------------------------------------------

    def results_figure(self, indices: Sequence[int], k: int):
        """The ranked results of the queries ``indices``, one row each (``viz.retrieval_grid``)."""
        k = _check_k(k)
        rows = [[self.load(item) for item in self.rankings[i][:k]] for i in indices]
        return viz.retrieval_grid([self.load(self.queries[i]) for i in indices], rows,
                                  [list(self.hits[i][:k]) for i in indices],
                                  query_titles=[self.query_titles[i] for i in indices], suptitle=self.title)

    def attention_figure(self, index: int, k: int):
        """The query and its top ``k`` results with their attention maps (``viz.attention_overlays``);
        None when the track gives no map for any of them."""
        k = _check_k(k)
        results = self.rankings[index][:k]
        maps = [self._map(self.query_attention, index)] if self.query_attention is not None else [None]
        maps += [self._map(self.attention, index, j) if self.attention is not None else None
                 for j in range(len(results))]
        shapes = {m.shape for m in maps if m is not None}
        if not shapes:
            return None
        if len(shapes) > 1:
            raise FgrError(f"attention maps of query {index} have different shapes {sorted(shapes)}: "
                           "return every map of one query on the same grid")
        titles = ["query"] + [f"{j + 1} {'hit' if hit else 'miss'}"
                              for j, hit in enumerate(self.hits[index][:len(results)])]
        images = [_pil(self.load(self.queries[index]))] + [_pil(self.load(item)) for item in results]
        return viz.attention_overlays(images, maps, shapes.pop(), titles=titles,
                                      suptitle=f"{self.query_titles[index]} (attention)")

    def draw(self, index: int, k: int, attention: bool = True) -> dict[str, Any]:
        """The figures of one query (what the widget shows); kept in ``current``."""
        if not 0 <= index < len(self.queries):
            raise FgrError(f"query index {index} is out of range: pick one of 0..{len(self.queries) - 1}")
        figs = {"results": self.results_figure([index], k)}
        if attention and self.has_attention:
            fig = self.attention_figure(index, k)
            if fig is not None:
                figs["attention"] = fig
        for fig in self.current.values():
            _close(fig)
        self.current = figs
        return figs

    def draw_static(self, n: int, k: int, name: str) -> dict[str, Any]:
        """The results of the first ``n`` queries in one figure, and each one's attention figure."""
        n = min(n, len(self.queries))
        figs = {name: self.results_figure(range(n), k)}
        if self.has_attention:
            for i in range(n):
                fig = self.attention_figure(i, k)
                if fig is not None:
                    figs[f"{name}-attention-q{i}"] = fig
        for key, fig in figs.items():
            self._png[key] = _png(fig)
            _close(fig)
        self.figures = figs
        return figs

    # the widget ---------------------------------------------------------------------------------

    def build_widget(self, k: int):
        import ipywidgets as w

        options = [(f"{i}: {self.query_titles[i]}", i) for i in range(len(self.queries))]  # labels unique
        self.controls = {
            "query": w.Dropdown(options=options, value=0, description="query"),
            "k": w.IntSlider(value=min(k, self.depth), min=1, max=self.depth, description="top k"),
        }
        if self.has_attention:
            self.controls["attention"] = w.Checkbox(value=True, description="attention")
        # The figures are PNG pictures the kernel puts into Image widgets itself. An Output widget would
        # rely on the front end capturing the kernel's display messages, and nbclient's stand-in for that
        # front end (under nbconvert and papermill) can stall the cell for ever on large pictures.
        self._pictures = w.VBox([])
        self._pictures.add_class("fgr-browser-figures")
        for control in self.controls.values():
            control.observe(lambda _change: self.refresh(), names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())), self._pictures])
        self.refresh()
        return self.widget

    def refresh(self) -> None:
        """Redraw for the values the controls hold now."""
        import ipywidgets as w

        c = self.controls
        figs = self.draw(c["query"].value, c["k"].value, c["attention"].value if "attention" in c else False)
        old = self._pictures.children
        self._pictures.children = [w.Image(value=_png(fig), format="png") for fig in figs.values()]
        for picture in old:
            picture.close()
        for fig in figs.values():
            _close(fig)

    def show(self) -> None:
        """Display the widget, or in static mode the static figures (as pictures)."""
        from IPython.display import Image, display

        if self.widget is not None:
            display(self.widget)
        else:
            for png in self._png.values():
                display(Image(data=png))

    def __repr__(self) -> str:
        mode = "interactive" if self.widget is not None else "static"
        return f"<retrieval browser: {len(self.queries)} queries, {mode}, static figures {list(self.figures)}>"

    def _map(self, fn: Callable, *args) -> Heatmap:
        import numpy as np

        m = fn(*args)
        if m is None:
            return None
        m = np.asarray(m, dtype=float)
        if m.ndim != 2:
            raise FgrError(f"an attention map must be a 2-D array (rows x columns of the feature grid), "
                           f"got shape {m.shape} for query {args[0]}: reshape it to the grid")
        return m


def retrieval_browser(queries: Sequence[Any], rankings: Sequence[Sequence[Any]], hits: Sequence[Sequence[bool]], *,
                      query_titles: Sequence[str] | None = None,
                      attention: Callable[[int, int], Heatmap] | None = None,
                      query_attention: Callable[[int], Heatmap] | None = None,
                      load: Callable[[Any], Any] | None = None, k: int = 10, static_queries: int = 3,
                      title: str | None = None, save: Callable[[Any, str], Any] | None = None,
                      name: str = "browser", interactive: bool | None = None, show: bool = True) -> Browser:
    """Browse ranked retrieval results, one query at a time.

    ``queries[i]``: the query image (a path, PIL image or array, as :mod:`fgr_utils.viz` takes; or
    anything ``load`` turns into one, so images are read only when drawn). ``rankings[i]``: its ranked
    results, best first. ``hits[i][j]``: whether result ``j`` is relevant. ``attention(i, j)``: the
    attention map over result ``j`` (0-based rank) of query ``i``, a 2-D array or None;
    ``query_attention(i)``: the map over the query itself (for the attribute track: where the model
    looks when asked about the query's attribute).

    ``interactive`` None decides with :func:`interactive_available`. Static figures of the first
    ``static_queries`` queries are always drawn and, with ``save`` (e.g. ``run.save_figure``), saved
    as ``name`` and ``name-attention-q<i>``, so a run's figures do not depend on where it ran.
    With ``show`` (and inside IPython) the browser is displayed at once; assign the returned
    :class:`Browser` (``view = retrieval_browser(...)``) so the cell does not print it a second time.
    """
    n = len(queries)
    if n == 0:
        raise FgrError("the browser needs at least one query")
    if len(rankings) != n or len(hits) != n:
        raise FgrError(f"got {n} queries, {len(rankings)} rankings and {len(hits)} hit lists: "
                       "give one ranked list and one hit list per query")
    for i, (ranked, hit) in enumerate(zip(rankings, hits)):
        if len(ranked) == 0 or len(hit) < len(ranked):
            raise FgrError(f"query {i} has {len(ranked)} results and {len(hit)} hit flags: "
                           "give at least one result and one hit flag per result")
    if query_titles is not None and len(query_titles) != n:
        raise FgrError(f"got {len(query_titles)} query titles for {n} queries: give one per query")
    for label, fn in (("attention", attention), ("query_attention", query_attention), ("load", load)):
        if fn is not None and not callable(fn):
            raise FgrError(f"{label} must be a function, not {type(fn).__name__}")
    k = _check_k(k)
    if static_queries < 1:
        raise FgrError(f"static_queries must be at least 1, not {static_queries}")
    browser = Browser(queries, rankings, hits, query_titles=list(query_titles or [f"query {i}" for i in range(n)]),
                      attention=attention, query_attention=query_attention, load=load, title=title)
    browser.draw_static(static_queries, k, name)
    if save is not None:
        for key, fig in browser.figures.items():
            save(fig, key)
    if (interactive_available() if interactive is None else interactive):
        browser.build_widget(k)
    if show and _in_ipython():
        browser.show()
    return browser


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _check_k(k: int) -> int:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise FgrError(f"k must be a whole number of results of at least 1, not {k!r}")
    return k


def _pil(item):
    """A PIL image: ``viz.attention_overlays`` sizes the heatmap by the image's width and height."""
    import numpy as np
    from PIL import Image

    img = viz._as_image(item)
    return Image.fromarray(np.asarray(img)) if isinstance(img, np.ndarray) else img


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
