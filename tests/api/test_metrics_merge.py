"""``/metrics`` under ``synmag serve``: the pipeline process's exposition, plus the API's own families."""

from __future__ import annotations

from service.api.routes.health import merge_expositions

CHILD = b"""# HELP synmag_products_total Products committed
# TYPE synmag_products_total counter
synmag_products_total 7.0
# HELP synmag_scheduler_leader 1 when this replica holds the scheduler lock
# TYPE synmag_scheduler_leader gauge
synmag_scheduler_leader 1.0
"""
PARENT = b"""# HELP synmag_products_total Products committed
# TYPE synmag_products_total counter
synmag_products_total 0.0
# HELP synmag_api_only_seconds Something only the API process has
# TYPE synmag_api_only_seconds gauge
synmag_api_only_seconds{route="latest"} 2.0
"""


def test_the_pipelines_values_win() -> None:
    merged = merge_expositions(CHILD, PARENT).decode()
    assert "synmag_products_total 7.0" in merged and "synmag_products_total 0.0" not in merged


def test_families_only_the_api_has_are_kept() -> None:
    merged = merge_expositions(CHILD, PARENT).decode()
    assert merged.count("# HELP synmag_api_only_seconds") == 1
    assert merged.endswith('synmag_api_only_seconds{route="latest"} 2.0\n')


def test_each_family_appears_once() -> None:
    merged = merge_expositions(CHILD, PARENT).decode()
    helps = [line.split()[2] for line in merged.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps)) == 3
