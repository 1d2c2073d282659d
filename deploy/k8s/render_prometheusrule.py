"""Write base/prometheusrule.yaml from deploy/prometheus/alerts.yml (the one rule file).

Kustomize cannot wrap a file into a custom resource's spec, so the PrometheusRule is
generated; tests/test_deploy_manifests.py fails when it differs from alerts.yml.

    .venv/bin/python deploy/k8s/render_prometheusrule.py          # rewrite it
    .venv/bin/python deploy/k8s/render_prometheusrule.py --check  # exit 1 when out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "alerts.yml"
OUT = HERE / "base" / "prometheusrule.yaml"
HEADER = "# Generated from deploy/prometheus/alerts.yml by deploy/k8s/render_prometheusrule.py: edit those.\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, as in alerts.yml."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def render() -> str:
    rules = yaml.safe_load(RULES.read_text())
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "synmag"},
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
