"""The distill sweep's Pareto front as one offline HTML page.

    python -m harness.reports.sweep_page runs/distill-sweep/sweep.json [-o sweep.html]

Reads sweep.json (schema edgefarm.distill.sweep/1, written by `python -m distill sweep`) and draws quality
against memory with the front highlighted, plus a table of every point. No script, no network.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.reports.charts_device import pareto_svg
from harness.reports.escape import h
from harness.reports.html_assets import CSS

SCHEMA = "edgefarm.distill.sweep/1"
_COLS = ("name", "student", "quant", "bytes", "peak_rss_mib", "latency_ms_p50", "spearman_vs_teacher",
         "paraphrase_accuracy", "gate")


def sweep_html(doc: dict[str, Any]) -> str:
    """The page for one sweep document."""
    front = set(map(str, doc.get("pareto") or []))
    rows = "".join("<tr" + (' class="front"' if str(p.get("name")) in front else "") + ">"
                   + "".join(f"<td>{h(p.get(c, ''))}</td>" for c in _COLS) + "</tr>"
                   for p in doc.get("points") or [] if isinstance(p, dict))
    head = "".join(f"<th>{h(c)}</th>" for c in _COLS)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f"content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>distill sweep</title>"
            f"<style>{CSS}</style></head><body><main><h2>Distill sweep: Pareto front</h2>"
            f'<div class="charts">{pareto_svg(doc)}</div><h3>Points (front in bold)</h3>'
            f'<table class="keyfig">{head}{rows}</table></main></body></html>\n')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep")
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    try:
        doc = json.loads(Path(args.sweep).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        print(f"edgefarm: {args.sweep}: cannot read a sweep.json ({e})", file=sys.stderr)
        return 2
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        print(f"edgefarm: {args.sweep}: schema is not {SCHEMA}", file=sys.stderr)
        return 2
    page = sweep_html(doc)
    if args.output:
        Path(args.output).write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
