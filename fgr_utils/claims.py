"""The papers' claims, tested on a profile's runs: ``claims.yaml`` (beside ``published.yaml``) declares
them; :func:`evaluate` gives each its difference with a paired bootstrap interval
(:mod:`fgr_utils.stats`) and a verdict. ``fgr claims`` prints the table and the report opens with it.

A claim compares metric ``a`` of one run with metric ``b`` of another (or the same) run on the same
test queries. Where a run was also trained with other seeds (runs named ``<run>+seed=<k>``, made by
``fgr reproduce --seeds N``), the interval covers the seeds too, and the table gives each side's mean
± standard deviation over the seeds.

``ablations.yaml`` declares, in the same form, the kit's own questions about why a claim holds or not:
a method against the same method with one component switched off or its budget changed (the
profile's ``ablations:`` runs, made by ``fgr reproduce --ablations``). ``declared(ABLATIONS)`` and
``evaluate(profile, ABLATIONS)`` read them; ``fgr claims --ablations`` prints them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from fgr_utils import io
from fgr_utils.runner import remake_hint
from fgr_utils.errors import FgrError
from fgr_utils.paths import PACKAGE_DIR, runs_dir
from fgr_utils.queries import QueryRef, QueryTable
from fgr_utils.results import RunRecord, matching_metrics
from fgr_utils.stats import Difference, paired_bootstrap

CLAIMS = PACKAGE_DIR / "claims.yaml"
ABLATIONS = PACKAGE_DIR / "ablations.yaml"
DIRECTIONS = ("greater", "less")
NOT_RUN = "not run"  # a run of the claim is missing
NO_VERDICT = "no verdict"  # the runs exist but cannot be compared (other queries, no such metric)
SAMPLES = 2000  # bootstrap replicates
_SEED_RUN = re.compile(r"(?P<base>.+)[+,]seed=(?P<seed>\d+)")


def declared(path=None) -> list[dict[str, Any]]:
    """The claims of ``path`` (default :data:`CLAIMS`, or :data:`ABLATIONS`), checked for the fields every
    claim needs."""
    path = path or CLAIMS
    data = yaml.safe_load(path.read_text()) or []
    ids = [c.get("id") for c in data]
    for c in data:
        missing = [k for k in ("id", "paper", "track", "claim", "metric", "a", "b", "direction") if k not in c]
        if missing:
            raise FgrError(f"{path}: claim {c.get('id', '?')!r} lacks {', '.join(missing)}")
        if c["direction"] not in DIRECTIONS:
            raise FgrError(f"{path}: claim {c['id']!r}: direction must be one of {', '.join(DIRECTIONS)}")
        for side in ("a", "b"):
            if not {"label", "run", "metric"} <= set(c[side]):
                raise FgrError(f"{path}: claim {c['id']!r}: {side} needs label, run and metric")
    if len(set(ids)) != len(ids):
        raise FgrError(f"{path}: claim ids must be unique")
    return data


@dataclass
class ClaimResult:
    """One claim on one dataset of a profile: the difference a - b and its verdict (or why none)."""

    claim: dict[str, Any]
    dataset: str = ""
    diff: Difference | None = None
    verdict: str = NOT_RUN
    reason: str = ""  # why there is no verdict
    runs: dict[str, list[str]] = field(default_factory=dict)  # side -> run folders used (one per seed)

    @property
    def unit(self) -> str:
        return self.claim.get("unit", "fraction")

    def as_dict(self) -> dict[str, Any]:
        d = self.diff
        return {"id": self.claim["id"], "paper": self.claim["paper"], "track": self.claim["track"],
                "claim": self.claim["claim"], "metric": self.claim["metric"], "direction": self.claim["direction"],
                "a": self.claim["a"]["label"], "b": self.claim["b"]["label"], "dataset": self.dataset,
                "published": self.claim.get("published", []), "unit": self.unit, "verdict": self.verdict,
                "reason": self.reason,
                **({"ours": {"a": d.a, "b": d.b, "difference": d.diff, "low": d.low, "high": d.high,
                             "level": d.level, "queries": d.queries, "seeds": d.seeds, "samples": d.samples,
                             "a_seeds": list(d.a_seeds), "b_seeds": list(d.b_seeds)}} if d else {}),
                "runs": self.runs, "differs": " ".join(str(self.claim.get("differs", "")).split())}


def seed_runs(name: str, profile: str) -> dict[int, RunRecord]:
    """The finished runs of ``name`` in ``profile`` by model seed: the run itself and every
    ``<name>+seed=<k>`` (``<name>,seed=<k>`` when ``name`` already carries overrides)."""
    base = runs_dir() / profile
    out: dict[int, RunRecord] = {}
    if (base / name / "metrics.json").is_file():
        rec = RunRecord.find(name, profile)
        out[int(rec.params.get("seed", 0))] = rec
    for path in sorted(base.glob(f"{glob_escape(name)}[+,]seed=*/metrics.json")):
        m = _SEED_RUN.fullmatch(path.parent.name)
        if m and m["base"] == name:
            rec = RunRecord.open(path.parent)
            out.setdefault(int(rec.params.get("seed", m["seed"])), rec)
    return dict(sorted(out.items()))


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _aligned(table: QueryTable, ref: QueryRef, keys: list[tuple[str, str]] | None) -> tuple[np.ndarray, list]:
    """The values of ``ref`` in ``table`` (and their keys), in the order of ``keys`` when given."""
    rows = table.rows(ref)
    values = table.column(ref.column)[rows]
    own = [table.keys[i] for i in rows]
    if keys is None:
        return values, own
    where = {k: i for i, k in enumerate(own)}
    if set(where) != set(keys):
        only_a = len(set(keys) - set(where))
        only_b = len(set(where) - set(keys))
        raise FgrError(f"the runs did not answer the same queries ({only_a} only in one, {only_b} only in the "
                       f"other; {table.path})")
    return values[[where[k] for k in keys]], keys


def _sides(claim: dict, profile: str) -> tuple[dict[str, dict[int, RunRecord]], str]:
    runs = {side: seed_runs(claim[side]["run"], profile) for side in ("a", "b")}
    missing = list(dict.fromkeys(claim[s]["run"] for s in ("a", "b") if not runs[s]))
    if not missing:
        return runs, ""
    return runs, (f"profile {profile} has no finished run {', '.join(missing)}: "
                  + "; ".join(remake_hint(name, profile) for name in missing))


def evaluate_claim(claim: dict[str, Any], profile: str, *, samples: int = SAMPLES) -> list[ClaimResult]:
    """The claim on every dataset both runs measured it on (one result with ``not run`` when a run is
    missing)."""
    runs, missing = _sides(claim, profile)
    if missing:
        return [ClaimResult(claim, reason=missing)]
    seeds = sorted(set(runs["a"]) & set(runs["b"]))
    if not seeds:
        return [ClaimResult(claim, verdict=NO_VERDICT,
                            reason=f"the runs share no seed (a: {sorted(runs['a'])}, b: {sorted(runs['b'])})")]
    first_a, first_b = runs["a"][seeds[0]].record, runs["b"][seeds[0]].record
    names_a = matching_metrics(first_a, claim["a"]["metric"])
    names_b = dict(matching_metrics(first_b, claim["b"]["metric"]))
    if not names_a or not names_b:
        side = "a" if not names_a else "b"
        return [ClaimResult(claim, verdict=NO_VERDICT,
                            reason=f"run {claim[side]['run']} recorded no metric {claim[side]['metric']}")]
    out = []
    for dataset, name_a in names_a:
        result = ClaimResult(claim, dataset, verdict=NO_VERDICT,
                             runs={s: [str(runs[s][k].dir) for k in seeds] for s in ("a", "b")})
        if dataset not in names_b:
            result.reason = f"run {claim['b']['run']} has no {claim['b']['metric']} on {dataset}"
            out.append(result)
            continue
        try:
            result.diff = _difference(runs, seeds, name_a, names_b[dataset], samples)
        except FgrError as e:
            result.reason = io.one_line(e)
            out.append(result)
            continue
        d = result.diff if claim["direction"] == "greater" else result.diff.flipped()
        result.verdict = d.verdict()
        out.append(result)
    return out


def _difference(runs: dict[str, dict[int, RunRecord]], seeds: list[int], name_a: str, name_b: str,
                samples: int) -> Difference:
    A, B, keys, groups, stat = [], [], None, None, None
    for k in seeds:
        ta, ra = runs["a"][k].per_query(name_a)
        tb, rb = runs["b"][k].per_query(name_b)
        if ra.stat != rb.stat:
            raise FgrError(f"{name_a} is a {ra.stat} mean and {name_b} a {rb.stat} mean: not the same metric")
        va, keys = _aligned(ta, ra, keys)
        vb, _ = _aligned(tb, rb, keys)
        A.append(va)
        B.append(vb)
        stat = ra.stat
        groups = [g for g, _ in keys]
    return paired_bootstrap(np.array(A), np.array(B), stat=stat, groups=groups, samples=samples)


def evaluate(profile: str, path=None, *, samples: int = SAMPLES) -> list[ClaimResult]:
    """Every claim declared in ``path`` on ``profile``'s runs."""
    return [r for claim in declared(path) for r in evaluate_claim(claim, profile, samples=samples)]


# --------------------------------------------------------------------------------------------
# As text: the rows of `fgr claims` and of the report's table
# --------------------------------------------------------------------------------------------

HEADER = ["claim", "paper's numbers (a vs b)", "ours (a vs b)", "a - b, 95 % interval", "verdict"]


def _num(value: float, unit: str) -> str:
    return f"{100 * value:.2f}" if unit == "fraction" else f"{value:.4f}"


def _spread(values: tuple[float, ...], unit: str) -> str:
    if len(values) < 2:
        return _num(values[0], unit) if values else ""
    return f"{_num(float(np.mean(values)), unit)} ± {_num(float(np.std(values, ddof=1)), unit)}"


def published_text(claim: dict[str, Any]) -> str:
    rows = claim.get("published") or []
    if not rows:
        return "not published"
    return "; ".join(f"{p['dataset']} {p['a']} vs {p['b']}" for p in rows)


def ours_text(r: ClaimResult) -> str:
    if r.diff is None:
        return r.reason
    d = r.diff
    where = f"{r.dataset}: " if r.dataset else ""
    seeds = f" (mean ± sd over {d.seeds} seeds)" if d.seeds > 1 else ""
    return f"{where}{_spread(d.a_seeds, r.unit)} vs {_spread(d.b_seeds, r.unit)}{seeds}"


def interval_text(r: ClaimResult) -> str:
    if r.diff is None:
        return "–"
    d, unit = r.diff, r.unit
    sign = "+" if d.diff >= 0 else ""
    points = " points" if unit == "fraction" else ""
    over = f"{d.queries} queries" + (f" x {d.seeds} seeds" if d.seeds > 1 else "")
    return f"{sign}{_num(d.diff, unit)} [{_num(d.low, unit)}, {_num(d.high, unit)}]{points} ({over})"


def rows(results: list[ClaimResult]) -> list[list[str]]:
    """One row per result, the columns of :data:`HEADER`."""
    return [[claim_text(r.claim), published_text(r.claim), ours_text(r), interval_text(r), r.verdict]
            for r in results]


def claim_text(claim: dict[str, Any]) -> str:
    return (f"{claim['paper']}: {claim['claim']} ({claim['a']['label']} vs {claim['b']['label']}; "
            f"{claim['metric']})")


def misses(results: list[ClaimResult]) -> list[tuple[str, str]]:
    """(claim id, what differs from the paper) of every result that does not hold."""
    return [(r.claim["id"], " ".join(str(r.claim.get("differs", "")).split())) for r in results
            if r.verdict != "holds" and r.claim.get("differs")]


def counts(results: list[ClaimResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out[r.verdict] = out.get(r.verdict, 0) + 1
    return out


def text(profile: str, results: list[ClaimResult], path=None) -> str:
    """``fgr claims``: the table of :func:`rows`, one block per claim, then what differs from the
    papers where a claim does not hold."""
    tally = ", ".join(f"{n} {v}" for v, n in counts(results).items())
    path = path or CLAIMS
    what = "Ablations" if path == ABLATIONS else "Claims"
    lines = [f"{what} on profile {profile} ({runs_dir() / profile}; declared in {path.name}): {tally}",
             "a - b: the paired bootstrap's 95 % interval over the test queries (and seeds where there are several)",
             ""]
    width = max(len(h) for h in HEADER[1:4])
    for r, row in zip(results, rows(results)):
        lines.append(f"[{row[4]}] {r.claim['id']}: {row[0]}")
        lines += [f"    {h:<{width}}  {v}" for h, v in zip(HEADER[1:4], row[1:4])]
    missed = misses(results)
    if missed:
        lines += ["", "What differs from the papers, where a claim does not hold:"]
        lines += [f"  {cid}: {why}" for cid, why in missed]
    return "\n".join(lines)
