"""Per-query results: what every evaluating notebook keeps beside ``metrics.json``, so that two runs on
the same test queries can be compared (:mod:`fgr_utils.stats`) without recomputing anything.

A run writes one table per evaluation, ``per_query/<table>.csv``: a ``query`` column (the query's
id: its file, or its file and attribute), an optional ``group`` column (the attribute a query is
asked under, the landmark set), then one column per value (AP, the rank of the true item, a 0/1 hit
at k, ...). A metric logged from a table records where it came from in ``metric_info``::

    "per_query": {"table": "stage2", "column": "ap", "stat": "mean"}

``stat`` is how the metric follows from the column: ``mean`` over the queries (those of ``group`` when
it is given; NaN values, e.g. a landmark query without positives, are left out) or ``macro``, the
unweighted mean of the groups' means. :meth:`fgr_utils.results.Run.log` checks that the logged value
is that statistic of the stored column, so a table and its metric cannot disagree.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fgr_utils import io
from fgr_utils.errors import FgrError
from fgr_utils.runner import remake_hint

FOLDER = "per_query"
STATS = ("mean", "macro")
_NAME = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@+="


@dataclass(frozen=True)
class QueryRef:
    """Where a metric's per-query values are: ``per_query/<table>.csv``, ``column``, ``stat``, ``group``."""

    table: str
    column: str
    stat: str = "mean"
    group: str | None = None

    def __post_init__(self):
        if self.stat not in STATS:
            raise FgrError(f"per-query statistic must be one of {', '.join(STATS)}, not {self.stat!r}")
        if self.stat == "macro" and self.group is not None:
            raise FgrError("a macro mean is over every group: give no group with stat 'macro'")

    def as_dict(self) -> dict[str, str]:
        out = {"table": self.table, "column": self.column, "stat": self.stat}
        if self.group is not None:
            out["group"] = self.group
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QueryRef:
        return cls(str(d["table"]), str(d["column"]), str(d.get("stat", "mean")),
                   None if d.get("group") is None else str(d["group"]))


@dataclass
class QueryTable:
    """The per-query values of one evaluation: ids, optional groups, and equal-length float columns."""

    ids: list[str]
    columns: dict[str, np.ndarray]
    groups: list[str] | None = None
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        self.ids = [str(i) for i in self.ids]
        if len(set(zip(self.ids, self.groups or [""] * len(self.ids)))) != len(self.ids):
            raise FgrError("per-query ids must be unique (within their group)")
        n = len(self.ids)
        if self.groups is not None:
            self.groups = [str(g) for g in self.groups]
            if len(self.groups) != n:
                raise FgrError(f"{len(self.groups)} groups for {n} queries")
        cols = {}
        for name, values in self.columns.items():
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
            if arr.size != n:
                raise FgrError(f"per-query column {name!r} has {arr.size} values for {n} queries")
            cols[str(name)] = arr
        self.columns = cols

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(group, id) of every row: what pairs two tables' queries."""
        return list(zip(self.groups or [""] * len(self.ids), self.ids))

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            where = f" in {self.path}" if self.path else ""
            raise FgrError(f"no per-query column {name!r}{where} (it has {', '.join(self.columns) or 'none'})")
        return self.columns[name]

    def rows(self, ref: QueryRef) -> np.ndarray:
        """Indices of the rows a metric is computed over (its group's, or all)."""
        if ref.group is None:
            return np.arange(len(self.ids))
        if self.groups is None:
            raise FgrError(f"per-query table {ref.table!r} has no groups, but the metric names group {ref.group!r}")
        rows = np.flatnonzero(np.asarray(self.groups) == ref.group)
        if not rows.size:
            raise FgrError(f"per-query table {ref.table!r} has no query of group {ref.group!r}")
        return rows

    def statistic(self, ref: QueryRef) -> float:
        """The metric ``ref`` describes, computed from the stored values."""
        return statistic(self.column(ref.column)[self.rows(ref)], ref.stat,
                         None if self.groups is None else np.asarray(self.groups)[self.rows(ref)])

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        lines: list[list[str]] = [["query", *(["group"] if self.groups is not None else []), *self.columns]]
        for i, qid in enumerate(self.ids):
            lines.append([qid, *([self.groups[i]] if self.groups is not None else []),
                          *(_fmt(self.columns[c][i]) for c in self.columns)])
        with io.atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(lines)
        self.path = path
        return path

    @classmethod
    def read(cls, path: str | Path) -> QueryTable:
        path = Path(path)
        try:
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
        except OSError as err:
            raise FgrError(f"cannot read per-query values {path}: {err.strerror}; run that notebook again") from None
        if not rows or rows[0][:1] != ["query"]:
            raise FgrError(f"{path} is not a per-query table (no 'query' header): run that notebook again")
        head, body = rows[0], rows[1:]
        grouped = len(head) > 1 and head[1] == "group"
        first = 2 if grouped else 1
        if any(len(r) != len(head) for r in body):
            raise FgrError(f"{path} has rows of the wrong length (a torn write?): run that notebook again")
        try:
            cols = {name: np.array([float(r[j]) for r in body]) for j, name in enumerate(head[first:], first)}
        except ValueError:
            raise FgrError(f"{path} holds a value that is not a number: run that notebook again") from None
        return cls([r[0] for r in body], cols, [r[1] for r in body] if grouped else None, path=path)


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else repr(float(x))


def statistic(values: np.ndarray, stat: str = "mean", groups: Sequence[str] | np.ndarray | None = None) -> float:
    """``mean`` of the non-NaN values, or ``macro``: the mean over groups of each group's mean."""
    values = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if stat == "mean":
        return float(values[keep].mean())
    if stat == "macro":
        if groups is None:
            raise FgrError("a macro mean needs the queries' groups")
        g = np.asarray(groups)[keep]
        v = values[keep]
        return float(np.mean([v[g == name].mean() for name in dict.fromkeys(g.tolist())]))
    raise FgrError(f"per-query statistic must be one of {', '.join(STATS)}, not {stat!r}")


def check_name(table: str) -> str:
    if not table or any(ch not in _NAME for ch in table):
        raise FgrError(f"per-query table name {table!r}: use letters, digits and _-.@+= only")
    return table


def table_path(run_dir: str | Path, table: str) -> Path:
    return Path(run_dir) / FOLDER / f"{check_name(table)}.csv"


def load(run_dir: str | Path, ref: QueryRef) -> QueryTable:
    """The stored table a metric's values are in; one line, naming the command that remakes the run,
    when it is missing."""
    run_dir = Path(run_dir)
    path = table_path(run_dir, ref.table)
    if not path.is_file():
        raise FgrError(f"run {run_dir.name} kept no per-query values ({path} is missing; a run made before "
                       f"they were kept): make it again; {remake_hint(run_dir.name, run_dir.parent.name)}")
    return QueryTable.read(path)
