"""The retrieval browser: static under the runner, a widget that redraws in Jupyter, figures that
show the given rankings, one clear line for bad input."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from fgr_utils import browser, viz
from fgr_utils.errors import FgrError

N_QUERIES, DEPTH = 4, 5


def _image(value: int) -> np.ndarray:
    """A small flat image whose grey level identifies it."""
    return np.full((6, 6, 3), value, dtype=np.uint8)


def _data():
    queries = [_image(200 + i) for i in range(N_QUERIES)]
    rankings = [[_image(10 * i + j) for j in range(DEPTH)] for i in range(N_QUERIES)]
    hits = [[(i + j) % 2 == 0 for j in range(DEPTH)] for i in range(N_QUERIES)]
    titles = [f"motif {i}" for i in range(N_QUERIES)]
    return queries, rankings, hits, titles


def _attention(i: int, j: int) -> np.ndarray:
    m = np.zeros((2, 2))
    m[j % 2, i % 2] = 1.0
    return m


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _frame(ax) -> tuple:
    return tuple(ax.spines["left"].get_edgecolor())


class _Kernel:
    kernel = object()


def test_static_mode_is_chosen_under_the_runner(monkeypatch):
    import IPython

    monkeypatch.delenv("FGR_NOTEBOOK", raising=False)
    assert browser.interactive_available() is False  # pytest: no IPython kernel
    with monkeypatch.context() as kernel:  # (matplotlib asks IPython too: undone before drawing)
        kernel.setattr(IPython, "get_ipython", lambda: _Kernel())
        assert browser.interactive_available() is True  # a live kernel with ipywidgets
        kernel.setenv("FGR_NOTEBOOK", "11_fabric_rerank")
        assert browser.interactive_available() is False  # fgr run / papermill
    monkeypatch.setenv("FGR_NOTEBOOK", "11_fabric_rerank")
    queries, rankings, hits, titles = _data()
    b = browser.retrieval_browser(queries, rankings, hits, query_titles=titles, k=3)
    assert b.widget is None and b.controls == {} and list(b.figures) == ["browser"]

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    b.show()
    assert len(shown) == 1 and shown[0].data.startswith(b"\x89PNG")  # the static figure, as a picture


def test_static_figures_show_the_given_rankings_and_hits():
    queries, rankings, hits, titles = _data()
    saved = {}
    b = browser.retrieval_browser(queries, rankings, hits, query_titles=titles, attention=_attention, k=3,
                                  static_queries=2, save=lambda fig, name: saved.setdefault(name, fig),
                                  interactive=False)
    assert list(saved) == list(b.figures) == ["browser", "browser-attention-q0", "browser-attention-q1"]
    grid = saved["browser"].axes
    assert len(grid) == 2 * (3 + 1)  # two queries, each followed by its top 3
    assert _titles(saved["browser"]) == ["motif 0", "1", "2", "3", "motif 1", "1", "2", "3"]
    for i in range(2):
        row = grid[4 * i:4 * (i + 1)]
        assert _frame(row[0]) == to_rgba(viz.QUERY)
        for j, ax in enumerate(row[1:]):
            assert _frame(ax) == to_rgba(viz.HIT if hits[i][j] else viz.MISS)
            assert np.asarray(ax.images[0].get_array())[0, 0, 0] == 10 * i + j  # the ranked image itself
    att = saved["browser-attention-q1"]
    assert [ax.get_title() for ax in att.axes] == ["query", "1 miss", "2 hit", "3 miss"]
    assert len(att.axes[0].images) == 1  # no map over the query here
    heat = np.asarray(att.axes[2].images[1].get_array())  # result 2's overlay
    assert heat.shape == (2, 2) and np.array_equal(heat, _attention(1, 1))


def test_interactive_widget_redraws_for_the_chosen_query():
    queries, rankings, hits, titles = _data()
    b = browser.retrieval_browser(queries, rankings, hits, query_titles=titles, attention=_attention,
                                  query_attention=lambda i: np.eye(2) * (i + 1), k=4, interactive=True)
    assert set(b.controls) == {"query", "k", "attention"} and b.widget is not None
    assert _titles(b.current["results"])[0] == "motif 0"

    b.controls["query"].value = 2
    results = b.current["results"]
    assert _titles(results) == ["motif 2", "1", "2", "3", "4"]
    assert [_frame(ax) for ax in results.axes[1:]] == [to_rgba(viz.HIT if h else viz.MISS) for h in hits[2][:4]]
    query_map = np.asarray(b.current["attention"].axes[0].images[1].get_array())
    assert np.array_equal(query_map, np.eye(2) * 3)  # the map of query 2 over query 2

    b.controls["k"].value = 2
    assert _titles(b.current["results"]) == ["motif 2", "1", "2"]
    assert len(b.current["attention"].axes) == 3

    b.controls["attention"].value = False
    assert set(b.current) == {"results"}
    pictures = b.widget.children[1].children  # what the widget shows: one PNG per current figure
    assert len(pictures) == 1 and bytes(pictures[0].value).startswith(b"\x89PNG")


def test_the_widget_does_not_stall_nbclient(tmp_path):
    """Under nbconvert / papermill (nbclient as the front end) a browser cell with many large pictures
    finishes: the widget shows PNG pictures set by the kernel, not an Output widget that relies on the
    front end capturing its display messages (nbclient's stand-in for that stalled such a cell)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = (
        "import numpy as np\n"
        "from fgr_utils.browser import retrieval_browser\n"
        "rng = np.random.default_rng(0)\n"
        "imgs = [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(40)]\n"
        "view = retrieval_browser(list(range(40)), [[(i + j) % 40 for j in range(1, 11)] for i in range(40)],\n"
        "                         [[j % 3 == 0 for j in range(10)] for _ in range(40)], load=imgs.__getitem__,\n"
        "                         attention=lambda i, j: rng.random((7, 7)), query_attention=lambda i: rng.random((7, 7)))\n"
        "print(type(view.widget).__name__)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = nb.cells[0].outputs
    assert [o.get("text") for o in out if o["output_type"] == "stream"] == ["VBox\n"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert sum(m["model_name"] == "ImageModel" for m in state.values()) == 2  # results and attention


def test_results_are_loaded_only_when_drawn():
    loaded = []

    def load(item):
        loaded.append(item)
        return _image(item % 256)

    rankings = [[100 * i + j for j in range(DEPTH)] for i in range(3)]
    browser.retrieval_browser([1000, 1001, 1002], rankings, [[True] * DEPTH] * 3, load=load, k=2,
                              static_queries=1, interactive=False)
    assert sorted(loaded) == [0, 1, 1000]  # query 0 and its top 2, nothing else


@pytest.mark.parametrize("change, message", [
    ({"rankings": "short"}, "one ranked list"),
    ({"k": 0}, "k must be"),
    ({"hits": "short"}, "hit flag"),
    ({"query_titles": ["one"]}, "query titles"),
    ({"static_queries": 0}, "static_queries"),
    ({"attention": "not a function"}, "attention must be a function"),
])
def test_bad_input_gets_one_line(change, message):
    queries, rankings, hits, titles = _data()
    kwargs = {"query_titles": titles, "interactive": False}
    if change.get("rankings") == "short":
        rankings = rankings[:-1]
    elif change.get("hits") == "short":
        hits = [h[:2] for h in hits]
    else:
        kwargs.update(change)
    with pytest.raises(FgrError, match=message) as err:
        browser.retrieval_browser(queries, rankings, hits, **kwargs)
    assert "\n" not in str(err.value)


def test_an_attention_map_that_is_not_2d_is_refused():
    queries, rankings, hits, _ = _data()
    with pytest.raises(FgrError, match="2-D array"):
        browser.retrieval_browser(queries, rankings, hits, attention=lambda i, j: np.zeros(4), interactive=False)
