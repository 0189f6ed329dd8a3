"""The ``fgr`` command: list, run, reproduce, results, claims, report, data, serve, bench.

``fgr serve`` and ``fgr bench`` need torch and the tracks' models; their implementations
(``fgr_utils.serve.main``, ``fgr_utils.bench.main``) are named here as ``module:function`` and
imported when the command runs, so that the other commands start without importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from fgr_utils import claims, report, results, runner
from fgr_utils.data import download, registry, synth
from fgr_utils.errors import FgrError


def _table(rows: list[list[str]], indent: str = "  ") -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _datasets_table() -> str:
    return _table([[r["name"], r["status"], r["source"].split(" ")[0], r["title"]] for r in registry.catalogue()])


def cmd_list(args: argparse.Namespace) -> int:
    print("Notebooks")
    print(_table([[nb.stem, nb.track, nb.purpose] for nb in runner.list_notebooks()]) or "  (none)")
    print("\nProfiles")
    print(_table([[name, desc] for name, desc in runner.list_profiles().items()]) or "  (none)")
    print("\nDatasets")
    print(_datasets_table())
    return 0


def parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise FgrError(f"-p expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def cmd_run(args: argparse.Namespace) -> int:
    nb = runner.find_notebook(args.notebook)
    runs = runner.plan_runs(nb, args.profile, parse_overrides(args.param or []), args.variant, args.name)
    runner.assign_fingerprints(runs)
    for run in runs:
        print(f"{run.name}: running {nb.stem} ({run.profile} profile) -> {run.output}")
        seconds = runner.execute(run, progress=not args.no_progress)
        print(f"{run.name}: done in {seconds:.1f} s")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    summary = runner.reproduce(args.profile, args.track, args.force, progress=not args.no_progress, seeds=args.seeds,
                               ablations=args.ablations)
    report.write_reproduction_record(args.profile, summary, time.perf_counter() - t0, args.track, args.seeds,
                                     args.ablations)
    md, page = report.write_report(args.profile)
    print(f"reproduce: {len(summary.executed)} run(s) executed, {len(summary.skipped)} up to date, "
          f"{time.perf_counter() - t0:.1f} s; report: {md} and {page.name}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    runner.check_profile(args.profile)
    rows = results.results(args.profile)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print(f"no finished runs in profile {args.profile}: run `fgr reproduce --profile {args.profile}`")
        return 0
    records = {r["run"]: r for r in results.load_records(args.profile)}
    for row in rows:
        print(f"{row['run']} ({row['notebook']}, {row['seconds']:.1f} s)")
        info = records[row["run"]].get("metric_info", {})
        for name, value in row["metrics"].items():
            i = info.get(name, {})
            print(f"  {name:<40} {results.format_value(value, i.get('unit', 'value')):>12}  "
                  f"[{i.get('protocol', '?')}; {i.get('dataset', '')} {i.get('split', '')}]".rstrip())
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    runner.check_profile(args.profile)
    path = claims.ABLATIONS if args.ablations else None
    found = claims.evaluate(args.profile, path)
    if args.json:
        print(json.dumps([r.as_dict() for r in found], indent=2))
    else:
        print(claims.text(args.profile, found, path))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    runner.check_profile(args.profile)
    md, page = report.write_report(args.profile)
    print(f"report: {md} and {page.name}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_cmd == "list":
        print(_datasets_table())
        return 0
    if args.data_cmd == "synth":
        t0 = time.perf_counter()
        root = synth.synthesize(args.name, args.size, args.seed, force=args.force)
        manifest = json.loads((root / synth.MANIFEST).read_text())
        counts = ", ".join(f"{k} {v}" for k, v in manifest.get("counts", {}).items())
        print(f"{args.name} ({args.size}, seed {args.seed}) at {root}: {counts} [{time.perf_counter() - t0:.1f} s]")
        return 0
    name = args.name
    if name in synth.GENERATORS and name not in registry.DATASETS:
        made = synth.generated(name)
        if args.data_cmd == "download":
            raise FgrError(f"{name} is synthetic: generate it with `fgr data synth {name} --size demo`")
        if not made:
            print(f"{name}: not generated; run `fgr data synth {name} --size demo`")
            return 1
        for m in made:
            print(f"{name}: generated {m['size']} seed {m['seed']}: {m['counts']}")
        return 0
    spec = registry.get(name)
    if args.data_cmd == "download":
        if args.mirror is not None:
            spec.via(args.mirror)  # an unknown mirror is an error, also for a manual dataset
        elif spec.source == "manual":
            print(download.manual_instructions(name))
            return 0
        root = download.download_dataset(name, keep_archives=args.keep_archives, force=args.force,
                                         progress=not args.no_progress, mirror=args.mirror)
        print(f"{name}: downloaded and verified at {root}" + (f" (mirror {args.mirror})" if args.mirror else ""))
        return 0
    report = download.verify_dataset(name)
    print(report.summary())
    if not report.ok and spec.source == "manual":
        print(download.manual_instructions(name))
    return 0 if report.ok else 1


def _command(target: str):
    """The function ``module:function`` that implements a command needing torch."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def add_run_arguments(r: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``fgr run``'s arguments (shared with ``torchrun -m fgr_utils.train``)."""
    r.add_argument("notebook", help="notebook name, e.g. 00_datasets")
    r.add_argument("--profile", default="demo", help="parameter profile (default: demo)")
    r.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a parameter")
    r.add_argument("--variant", help="run only this variant of the profile's runs")
    r.add_argument("--name", help="run folder name (default: the notebook, variant and overrides)")
    r.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    return r


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fgr", description="Fine-grained image retrieval reproducibility kit.")
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("list", help="notebooks, profiles and datasets").set_defaults(func=cmd_list)

    add_run_arguments(sub.add_parser("run", help="execute one notebook through papermill")).set_defaults(func=cmd_run)

    rp = sub.add_parser("reproduce", help="run every notebook of a profile in dependency order, then the report")
    rp.add_argument("--profile", default="demo")
    rp.add_argument("--track", help="only this track (and the notebooks it depends on)")
    rp.add_argument("--force", action="store_true", help="re-run even runs that are up to date")
    rp.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="also train with model seeds 1..N-1 (runs <run>+seed=<k>; the data stay the same): "
                         "the claims then cover the seeds")
    rp.add_argument("--ablations", action="store_true",
                    help="also run the profile's ablations (each method with one component switched off), "
                         "which the claims' explanations read")
    rp.add_argument("--no-progress", action="store_true")
    rp.set_defaults(func=cmd_reproduce)

    rs = sub.add_parser("results", help="every metric recorded in a profile")
    rs.add_argument("--profile", default="demo")
    rs.add_argument("--json", action="store_true", help="machine-readable list of runs")
    rs.set_defaults(func=cmd_results)

    rc = sub.add_parser("claims", help="the papers' claims on a profile's runs: difference, 95 %% interval, verdict")
    rc.add_argument("--profile", default="demo")
    rc.add_argument("--ablations", action="store_true",
                    help="the kit's ablations instead (ablations.yaml: each method against itself with one "
                         "component off; runs of `fgr reproduce --ablations`)")
    rc.add_argument("--json", action="store_true", help="machine-readable list of claims")
    rc.set_defaults(func=cmd_claims)

    rr = sub.add_parser("report", help="write runs/<profile>/REPORT.md and REPORT.html from the finished runs")
    rr.add_argument("--profile", default="demo")
    rr.set_defaults(func=cmd_report)

    d = sub.add_parser("data", help="list, download, verify or synthesise datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    dsub.add_parser("list", help="every dataset with its status")
    dl = dsub.add_parser("download", help="fetch a dataset (prints the steps for manual ones)")
    dl.add_argument("name")
    dl.add_argument("--keep-archives", action="store_true")
    dl.add_argument("--force", action="store_true", help="fetch again even if present")
    dl.add_argument("--no-progress", action="store_true")
    dl.add_argument("--mirror", metavar="LABEL",
                    help="fetch from an alternative source and convert its layout where it differs "
                         "(shoev2, chairv2: kaggle or gdrive-alt)")
    dv = dsub.add_parser("verify", help="check a dataset's layout and counts; list what is missing")
    dv.add_argument("name")
    ds = dsub.add_parser("synth", help="generate a synthetic dataset")
    ds.add_argument("name")
    ds.add_argument("--size", default="demo", help="smoke, demo, paper, or a count such as 500 or 17k")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--force", action="store_true", help="generate again even if present")
    d.set_defaults(func=cmd_data)

    sv = sub.add_parser("serve", help="answer retrieval queries over HTTP for a trained run")
    sv.add_argument("run_dir", help="a finished run folder, or a run name of --profile (e.g. 30_asfr_train-asen_v2)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--profile", default="demo", help="where a run name is looked up (default: demo)")
    sv.add_argument("--index", default="flat", help="index kind per collection (default: flat, exact inner product)")
    sv.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted upload (default: 10)")
    sv.add_argument("--max-attributes", type=int, default=None, help="most attributes per query (default: all)")
    sv.add_argument("--device", default="cpu")
    sv.set_defaults(func="fgr_utils.serve:main")

    b = sub.add_parser("bench", help="speed measurements (print their figures)")
    b.add_argument("what", choices=["rerank", "extract", "index", "serve"])
    b.add_argument("--run", help="index/serve: a trained run (folder or run name of --profile) to measure")
    b.add_argument("--requests", type=int, default=500, help="serve: requests sent")
    b.add_argument("--concurrency", type=int, default=8, help="serve: concurrent clients")
    b.add_argument("--profile", default="demo")
    b.add_argument("--queries", type=int, default=None, help="queries timed (rerank: 10, index: 1000)")
    b.add_argument("--n", type=int, default=1_000_000, help="index: vectors in the collection")
    b.add_argument("--dim", type=int, default=256, help="index: their dimension")
    b.add_argument("--images", type=int, default=256, help="extract: images timed")
    b.set_defaults(func="fgr_utils.bench:main")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return (_command(args.func) if isinstance(args.func, str) else args.func)(args)
    except FgrError as e:
        print(f"fgr: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fgr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
