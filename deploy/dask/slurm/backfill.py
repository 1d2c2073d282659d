"""Run ``synmag reprocess`` on SLURM through dask-jobqueue (see jobqueue.yaml beside it).

    python deploy/dask/slurm/backfill.py --jobs 16 -- --start 2025-01-01 --end 2026-01-01

Starts a ``SLURMCluster`` from the ``jobqueue.slurm`` configuration, asks for ``--jobs``
workers, then runs ``synmag reprocess ARGS --cluster ADDRESS`` against it, in this process's
environment (``SYNMAG_*``: database, store, providers travel from here to the workers). The
workers that SLURM starts later join the running backfill; the cluster goes when it ends.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="SLURM jobs (one worker each)")
    parser.add_argument("reprocess_args", nargs=argparse.REMAINDER, help="-- then synmag reprocess's arguments")
    args = parser.parse_args()
    from dask_jobqueue import SLURMCluster  # pip install dask-jobqueue

    with SLURMCluster() as cluster:
        cluster.scale(jobs=args.jobs)
        print(cluster.job_script(), file=sys.stderr)
        rest = [a for a in args.reprocess_args if a != "--"]
        return subprocess.call(["synmag", "reprocess", *rest, "--cluster", cluster.scheduler_address])


if __name__ == "__main__":
    sys.exit(main())
