"""The `edgefarm` command: parses, calls, prints. A UserError is one line on stderr and its exit code.

Exit codes: harness/errors.py defines them (README.md says the same; tests/test_exit_codes.py runs each).
Anything that escapes as neither a UserError nor a signal is a bug: traceback, exit 70.
"""

from __future__ import annotations

import argparse
import importlib
import math
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import NoReturn, TextIO, cast

from harness.console import SafeStream
from harness.errors import EXIT_INTERNAL, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, UserError
from harness.text import printable
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


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C (finally blocks and context managers run), then exit 143."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag or value is one line naming it (exit 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {printable(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgefarm", description="Benchmark and gate distilled student models on a farm of devices.")
    parser.add_argument("--version", action="version", version=f"edgefarm {harness_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad flag (one line already printed): a code, for callers too
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    for dest, value in vars(args).items():  # no flag of ours means NaN or infinity: catch any that lacks a type check
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"argument --{dest.replace('_', '-')}: expected a finite number, got {value}")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"edgefarm: error: {printable(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgefarm: interrupted; results finished so far are in the run directory", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("edgefarm: terminated (SIGTERM); results finished so far are in the run directory", file=sys.stderr)
        return EXIT_SIGTERM
    except OSError as e:
        if e.filename is None:
            raise
        # a path the user gave (or a full disk under it): name the path and what the system said
        target = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
        what = e.strerror or str(e)
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            what = f"{what}: a file is in the way of a directory"
        print(f"edgefarm: error: {printable(target)}: {what}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = cast(TextIO, SafeStream(out)), cast(TextIO, SafeStream(err))
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if previous == signal.SIG_DFL:  # a command (the run path) may install its own, finer handler
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(argv)
    except SystemExit:
        raise
    except Exception:  # anything that is not a UserError is a bug: show it, and say so by the exit code
        traceback.print_exc()
        print(f"edgefarm: internal error (a bug; please report it with the traceback above); exit {EXIT_INTERNAL}",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        sys.stdout, sys.stderr = out, err
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
