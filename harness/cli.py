"""The `edgefarm` command: parses, calls, prints. A UserError is one line on stderr and its exit code."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import UserError
from harness.version import harness_version

# Each module exposes register(subparsers); handlers are stored as `func` and return an exit code.
COMMAND_MODULES = [
    "harness.commands.run_cmd",
    "harness.commands.gate_cmds",
    "harness.commands.golden_cmd",
    "harness.commands.demo_cmd",
    "harness.commands.history_cmd",
    "harness.commands.telemetry_cmd",
    "harness.commands.drift_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefarm", description="Benchmark and gate distilled student models on a farm of devices.")
    parser.add_argument("--version", action="version", version=f"edgefarm {harness_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"edgefarm: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgefarm: interrupted; results finished so far are in the run directory", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
