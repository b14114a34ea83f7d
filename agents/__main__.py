"""`python -m agents probe | run SPEC` (and `_child FD SPEC`, the model process). agents/README.md.

Each command imports only the modules it needs: the model process never loads the supervisor or the
statistics, the agent never loads a runtime.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Dict, List, Optional

USAGE = "usage: python -m agents probe | run SPEC_JSON (JSON text, a file, or -)"


def cmd_probe() -> int:
    import platform

    from agents.fingerprint import fingerprint
    from agents.protocol import AGENT_VERSION, emit
    emit({"event": "probe", "agent_version": AGENT_VERSION, "fingerprint": fingerprint(),
          "python": platform.python_version(), "runtimes": _importable()})
    return 0


def _importable() -> Dict[str, bool]:
    import importlib.util
    out: Dict[str, bool] = {}
    for mod in ("onnxruntime", "ai_edge_litert", "tflite_runtime", "llama_cpp"):
        try:
            out[mod] = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            out[mod] = False
    return out


def _format_of(path: str, said: Optional[str]) -> str:
    """The artifact's format from its bytes; ArtifactError if unreadable or not the format the spec says."""
    from agents.formats import ArtifactError, detect_format

    fmt = detect_format(path)
    if said is not None and said != fmt:
        raise ArtifactError("%s: spec says format %s but the bytes are %s" % (path, said, fmt))
    return fmt


def cmd_run(raw_spec: str) -> int:
    from agents.procfs import thermal
    from agents.formats import ArtifactError
    from agents.protocol import emit, error_event
    from agents.result import AgentResult
    from agents.spec import SpecError, parse_spec

    try:
        spec = parse_spec(raw_spec)
    except SpecError as e:
        emit(error_event(str(e)))
        return 2
    res = AgentResult(format=spec.format, thermal={"start": thermal()}, workload=spec.to_dict())
    alt = spec.alternate
    try:
        spec.format = res.format = _format_of(spec.artifact, spec.format)
        if alt is not None:
            alt.format = _format_of(alt.artifact, alt.format)
    except ArtifactError as e:
        res.message = str(e)
        emit(res.to_event())
        return 0
    res.workload = spec.to_dict()
    from agents.supervisor import run_child
    run_child(spec, res)
    res.thermal["end"] = thermal()
    emit(res.to_event())
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch a command; an unexpected exception is an agent bug: an error line, exit 3, traceback on stderr."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 3 and args[0] == "_child":
            from agents.child import child_main
            return child_main(int(args[1]), args[2])
        if len(args) == 1 and args[0] == "probe":
            return cmd_probe()
        if len(args) == 2 and args[0] == "run":
            return cmd_run(args[1])
    except Exception as e:
        import traceback

        from agents.protocol import emit, error_event
        traceback.print_exc()
        emit(error_event("agent bug: %s: %s" % (type(e).__name__, e)))
        return 3
    from agents.protocol import emit, error_event
    emit(error_event(USAGE))
    return 2


if __name__ == "__main__":
    sys.exit(main())
