"""Regenerate the README's report screenshot and demo table from a demo run.

    .venv/bin/edgefarm demo                      # writes runs/demo-<id>/
    .venv/bin/python docs/make_screenshot.py [RUN_DIR] [--baseline RUN_DIR]

Re-gates RUN_DIR (default: the newest runs/demo-*) with ci/policy.toml and the devices' profiles, exactly as
`edgefarm demo` does, renders the HTML report with this checkout's printers, photographs it in headless
Chromium (docs/report.png), and rewrites the key-figures table between the README's
`<!-- demo-table -->` markers. Nothing is downloaded; Chromium comes from ci/setup.sh --test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import profiles  # noqa: E402
from harness.gate import evaluate, load_policy  # noqa: E402
from harness.records import load_run  # noqa: E402
from harness.reports import render  # noqa: E402
from harness.reports.keyfigures import key_rows, render_rows  # noqa: E402

START, END = "<!-- demo-table -->", "<!-- /demo-table -->"


def newest_demo() -> Path:
    runs = sorted((ROOT / "runs").glob("demo-*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit("make_screenshot: no runs/demo-* here; run `edgefarm demo` first")
    return runs[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="demo run directory (default: the newest runs/demo-*)")
    ap.add_argument("--baseline", help="a baseline run directory to gate against")
    ap.add_argument("--out", default=str(ROOT / "docs" / "report.png"))
    ap.add_argument("--size", default="1280,1500", help="window W,H in CSS pixels")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    args = ap.parse_args()
    run = (Path(args.run) if args.run else newest_demo()).resolve()
    os.chdir(ROOT)  # the report names the policy as ci/policy.toml, as `edgefarm demo` run from here does
    records = load_run(run)
    names = sorted({r.device.name for r in records})
    profs = {p.name: p for p in profiles.resolve(names, None)}
    base = load_run(Path(args.baseline)) if args.baseline else None
    report = evaluate(records, load_policy(Path("ci") / "policy.toml"), baseline=base, profiles=profs,
                      run=f"runs/{run.name}", baseline_run=Path(args.baseline).name if args.baseline else None)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("make_screenshot: chromium not found (ci/setup.sh --test installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render(report, "html"), encoding="utf-8")
        argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={args.size}",
                f"--screenshot={Path(args.out).resolve()}", page.as_uri()]
        subprocess.run(argv, check=True, capture_output=True, timeout=180)
    print(f"wrote {args.out} from {run} ({report.summary})")
    verdicts: dict[tuple[str, str], str] = {(c.device, c.artifact): c.outcome for c in report.cells}
    table = render_rows(key_rows(records, base or (), verdicts), "table")
    print(table)
    if not args.no_readme:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        block = f"{START}\n```\n{table.rstrip()}\n```\n{END}"
        new, n = re.subn(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        if n != 1:
            raise SystemExit(f"make_screenshot: README.md has no {START} ... {END} block")
        readme.write_text(new, encoding="utf-8")
        print("README.md demo table updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
