"""The backfill on Dask: ``synmag reprocess`` over years of minutes, on as many workers as there are.

The minutes to reprocess (:func:`service.pipeline.reprocess.source_frames`) are cut into
clock-aligned partitions (:mod:`.plan`, an hour by default); each partition is one
``dask.distributed`` task. A worker loads the model and builds its pipeline context once
(:class:`.worker.BackfillPlugin`) and runs the feed's own
:func:`~service.pipeline.reprocess.reprocess_minute` on each minute of a partition, so the
products, their conditional puts and their database keys are exactly the feed's: a task
retried after its worker died, or a whole rerun, finds what was committed (``exists``) or
adopts what was put (``repaired``) and makes nothing twice. A task returns a
:class:`.summary.PartitionSummary` (counts and the reasons of the minutes that did not get
a product), never products. :mod:`.cluster` opens the cluster (an embedded ``LocalCluster``
or any scheduler) and runs the whole.
"""

from service.pipeline.backfill.cluster import BackfillRun, open_client, submit_backfill
from service.pipeline.backfill.plan import Partition, parse_partition, plan_partitions
from service.pipeline.backfill.summary import BackfillSummary, PartitionSummary
from service.pipeline.backfill.worker import BackfillPlugin, run_partition

__all__ = [
    "BackfillPlugin",
    "BackfillRun",
    "BackfillSummary",
    "Partition",
    "PartitionSummary",
    "open_client",
    "parse_partition",
    "plan_partitions",
    "run_partition",
    "submit_backfill",
]
