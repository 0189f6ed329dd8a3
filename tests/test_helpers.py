"""Small shared helpers: the first few names of a one-line message, and the queries a figure shows."""
from __future__ import annotations

from pathlib import Path

from fgr_utils import io, viz


def test_few_names_the_first_ones_and_counts_the_rest():
    assert io.few([]) == ""
    assert io.few(["a", "b"]) == "a, b"
    assert io.few([f"f{i}" for i in range(7)], 3) == "f0, f1, f2 and 4 more"
    assert io.few((Path("x") / f"{i}.png" for i in range(6))) == "x/0.png, x/1.png, x/2.png, x/3.png, x/4.png and 1 more"


def test_spread_picks_evenly_from_first_to_last():
    assert viz.spread(10, 4) == [0, 3, 6, 9]
    assert viz.spread(3, 8) == [0, 1, 2]  # never more than there are
    assert viz.spread(1, 4) == [0]
    assert viz.spread(0, 4) == []
