"""``torchrun --nproc_per_node N -m fgr_utils.train NOTEBOOK [fgr run's options]``: one notebook in
every process of a torchrun job.

Every process plans the same runs as ``fgr run`` and executes the notebook through papermill; the
kernel inherits torchrun's environment, so :func:`fgr_utils.train.fit` trains data-parallel. Rank 0
produces the run folder (executed notebook, run.json, metrics.json, figures, checkpoints); rank N
executes into ``<run>/rank<N>/`` and writes nothing else there. Without torchrun it is ``fgr run``.
"""
from __future__ import annotations

import argparse
import sys

from fgr_utils import cli, runner
from fgr_utils.distributed import SESSION_ENV, distributed
from fgr_utils.errors import FgrError


def _parser() -> argparse.ArgumentParser:
    """``fgr run``'s arguments, named for this entry."""
    return cli.add_run_arguments(argparse.ArgumentParser(
        prog="torchrun [--nproc_per_node N ...] -m fgr_utils.train",
        description="Execute one notebook in every process of a torchrun job: its training is data-parallel, "
                    "rank 0 writes the run folder. The options are fgr run's."))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rank = 0
    try:
        rank, world = distributed()
        nb = runner.find_notebook(args.notebook)
        runs = runner.plan_runs(nb, args.profile, cli.parse_overrides(args.param or []), args.variant, args.name)
        runner.assign_fingerprints(runs)
        for i, run in enumerate(runs):
            if rank == 0:
                how = f"{run.profile} profile" + (f", {world} processes" if world > 1 else "")
                print(f"{run.name}: running {nb.stem} ({how}) -> {run.output}", flush=True)
            with runner.environment({SESSION_ENV: f"fgr/{i}/{run.name}"}):
                seconds = runner.execute(run, progress=not args.no_progress and rank == 0, rank=rank)
            if rank == 0:
                print(f"{run.name}: done in {seconds:.1f} s", flush=True)
        return 0
    except runner.NotebookFailed as e:  # this process's kernel failed: every rank says so
        print(f"fgr: {e}" if rank == 0 else f"fgr (rank {rank}): {e}", file=sys.stderr)
        return 1
    except FgrError as e:  # planning fails alike in every process: rank 0 says it once
        if rank == 0:
            print(f"fgr: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fgr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
