"""Speed benchmarks. Goals live here, never in timed tests. Run with ``make bench``."""
