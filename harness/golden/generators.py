"""Producing outputs for golden items: from a GGUF (llama.cpp in a child process), an ONNX or TFLite model
(in process), or a Python callable "module:function". All run on the host.

A callable gets, for a text item, `fn(prompt, max_tokens=.., temperature=.., seed=..) -> str`, and for a
tensor item `fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]` (or a single array).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from harness.errors import ArtifactError, UserError
from harness.golden.suite import Item

Arrays = dict[str, npt.NDArray[Any]]


@dataclass
class Output:
    """What one item produced. `repeat` is a second run with the same seed (the determinism check)."""

    id: str
    text: str | None = None
    tensors: Arrays | None = None
    repeat_text: str | None = None
    repeat_tensors: Arrays | None = None
    # text models: {"shape", "dtype", "finite", "argmax", "top_ids", "top_values", "at_ids"} of the next-token logits
    logits: dict[str, Any] | None = None
    expected_logits_shape: list[int] | None = None
    error: str | None = None


@dataclass
class Describe:
    kind: str  # gguf | onnx | tflite | callable
    ref: str
    sha256: str | None = None
    runtime: dict[str, str] = field(default_factory=dict)


class Generator(Protocol):
    """Runs items; `repeat_ids` are run twice with the same seed."""

    describe: Describe

    def generate(self, items: Sequence[Item], repeat_ids: set[str]) -> list[Output]: ...


def _signame(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


class LlamaGenerator:
    """A GGUF generated with llama-cpp-python in a child process: greedy (temperature 0) or seeded sampling.

    One thread unless told otherwise (n_threads, or $EDGEFARM_GOLDEN_THREADS): llama.cpp's threads spin while
    they wait, and on a busy 2-core host (other pytest workers, other jobs) two threads measured 33 ms per token
    where one took 0.2 ms for the tiny sample. Prompt evaluation uses the same count.
    """

    def __init__(self, path: Path, *, sha256: str | None = None, n_ctx: int = 512, n_threads: int | None = None,
                 timeout_s: float | None = None) -> None:
        self.path, self.n_ctx, self.timeout_s = path, n_ctx, timeout_s
        self.n_threads = n_threads or int(os.environ.get("EDGEFARM_GOLDEN_THREADS") or 1)
        self.describe = Describe("gguf", str(path), sha256)

    def generate(self, items: Sequence[Item], repeat_ids: set[str]) -> list[Output]:
        req = {"model": str(self.path), "n_ctx": self.n_ctx, "n_threads": self.n_threads,
               "items": [{"id": i.id, "prompt": i.prompt, "max_tokens": i.generation.max_tokens,
                          "temperature": i.generation.temperature, "seed": i.generation.seed,
                          "repeat": i.id in repeat_ids,
                          "logit_ids": i.reference_logits.ids if i.reference_logits else None} for i in items]}
        tokens = sum(i.generation.max_tokens * (2 if i.id in repeat_ids else 1) for i in items)
        timeout = self.timeout_s or 60.0 + 0.5 * tokens
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        argv = [sys.executable, "-m", "harness.golden.llama_worker"]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(argv, input=json.dumps(req), capture_output=True, text=True, timeout=timeout,
                                  env=env)
            stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
            died = None if rc == 0 else (f"died with {_signame(rc)}" if rc < 0 else f"exited {rc}")
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            died = f"timed out after {time.monotonic() - t0:.0f} s"
        outs: dict[str, Output] = {}
        n_vocab: int | None = None
        in_flight: str | None = None
        for line in stdout.splitlines():
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue  # llama.cpp may print to stdout; only our JSON lines count
            kind = ev.get("event")
            if kind == "fatal":
                raise ArtifactError(f"{self.path}: llama.cpp could not load the model: {ev['error']}")
            if kind == "loaded":
                n_vocab = int(ev["n_vocab"])
                self.describe.runtime = {"name": "llama-cpp-python", "version": str(ev.get("version"))}
            elif kind == "start":
                in_flight = ev["id"]
            elif kind == "item":
                outs[ev["id"]] = Output(id=ev["id"], text=ev["text"], repeat_text=ev.get("text2"),
                                        logits=ev["logits"], expected_logits_shape=[n_vocab] if n_vocab else None)
                in_flight = None
            elif kind == "item_error":
                outs[ev["id"]] = Output(id=ev["id"], error=ev["error"])
                in_flight = None
        if died and n_vocab is None:
            tail = stderr.strip()[-400:]
            raise ArtifactError(f"{self.path}: llama.cpp {died} while loading the model "
                                f"(command {argv!r}){'; stderr: ' + tail if tail else ''}")
        result: list[Output] = []
        for it in items:
            if it.id in outs:
                result.append(outs[it.id])
            elif it.id == in_flight:
                result.append(Output(id=it.id, error=f"llama.cpp {died} while generating this item"))
            else:
                result.append(Output(id=it.id, error=f"not run: llama.cpp {died} on item {in_flight!r}"))
        return result


def _tensor_inputs(item: Item) -> Arrays:
    assert item.input is not None
    return {name: t.array() for name, t in item.input.items()}


class OnnxGenerator:
    """An ONNX model run in onnxruntime on the host CPU (single-threaded, so results are bit-reproducible)."""

    def __init__(self, path: Path, *, sha256: str | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ArtifactError(f"{path}: onnxruntime could not load the model: {e}") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.describe = Describe("onnx", str(path), sha256, {"name": "onnxruntime", "version": ort.__version__})

    def _run(self, feeds: Arrays) -> Arrays:
        return dict(zip(self.outputs, (np.asarray(v) for v in self.session.run(None, feeds))))

    def generate(self, items: Sequence[Item], repeat_ids: set[str]) -> list[Output]:
        return _run_tensor_items(items, repeat_ids, self._run)


class TfliteGenerator:
    """A TFLite model run with LiteRT (ai_edge_litert), or tflite_runtime where only that is installed."""

    def __init__(self, path: Path, *, sha256: str | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
            runtime = "ai-edge-litert"
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter
                runtime = "tflite-runtime"
            except ImportError:
                raise UserError("running a TFLite golden suite needs LiteRT",
                                hint="pip install ai-edge-litert (the `agent` extra)") from None
        try:
            self.interp = Interpreter(model_path=str(path), num_threads=1)
            self.interp.allocate_tensors()
        except Exception as e:  # noqa: BLE001
            raise ArtifactError(f"{path}: LiteRT could not load the model: {e}") from None
        self.describe = Describe("tflite", str(path), sha256, {"name": runtime})

    def _run(self, feeds: Arrays) -> Arrays:
        details = self.interp.get_input_details()
        by_name = {d["name"]: d for d in details}
        for i, (name, value) in enumerate(feeds.items()):
            d = by_name.get(name) or details[i]
            if list(d["shape"]) != list(value.shape):
                self.interp.resize_tensor_input(d["index"], list(value.shape))
                self.interp.allocate_tensors()
            self.interp.set_tensor(d["index"], value)
        self.interp.invoke()
        return {d["name"]: np.array(self.interp.get_tensor(d["index"])) for d in self.interp.get_output_details()}

    def generate(self, items: Sequence[Item], repeat_ids: set[str]) -> list[Output]:
        return _run_tensor_items(items, repeat_ids, self._run)


def _run_tensor_items(items: Sequence[Item], repeat_ids: set[str], run: Callable[[Arrays], Arrays]) -> list[Output]:
    outs: list[Output] = []
    for it in items:
        if it.kind != "tensor":
            outs.append(Output(id=it.id, error="a text prompt given to a tensor model (this item needs a GGUF)"))
            continue
        try:
            feeds = _tensor_inputs(it)
            first = run(feeds)
            again = run(feeds) if it.id in repeat_ids else None
            outs.append(Output(id=it.id, tensors=first, repeat_tensors=again))
        except Exception as e:  # noqa: BLE001 - a runtime error on one input is that item's result
            outs.append(Output(id=it.id, error=f"{type(e).__name__}: {e}"))
    return outs


class CallableGenerator:
    """A Python function "module:function" (a teacher that is not an artifact, or a stand-in student)."""

    def __init__(self, spec: str) -> None:
        mod_name, _, fn_name = spec.partition(":")
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # console scripts do not put the working directory on sys.path
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as e:
            raise UserError(f"cannot load the callable {spec!r}: {e}",
                            hint="give 'package.module:function', importable from the current directory") from None
        if not callable(fn):
            raise UserError(f"{spec!r} is not callable")
        self.fn: Callable[..., Any] = fn
        self.describe = Describe("callable", spec)

    def _one(self, it: Item) -> tuple[str | None, Arrays | None]:
        if it.kind == "text":
            g = it.generation
            text = self.fn(it.prompt, max_tokens=g.max_tokens, temperature=g.temperature, seed=g.seed)
            if not isinstance(text, str):
                raise TypeError(f"returned {type(text).__name__}, expected str")
            return text, None
        got = self.fn(_tensor_inputs(it))
        arrays = {k: np.asarray(v) for k, v in got.items()} if isinstance(got, dict) else {"output": np.asarray(got)}
        return None, arrays

    def generate(self, items: Sequence[Item], repeat_ids: set[str]) -> list[Output]:
        outs: list[Output] = []
        for it in items:
            try:
                text, arrays = self._one(it)
                rt, ra = self._one(it) if it.id in repeat_ids else (None, None)
                outs.append(Output(id=it.id, text=text, tensors=arrays, repeat_text=rt, repeat_tensors=ra))
            except Exception as e:  # noqa: BLE001 - user code: its failure is the item's result
                outs.append(Output(id=it.id, error=f"{self.describe.ref} raised {type(e).__name__}: {e}"))
        return outs


def is_callable_spec(target: str) -> bool:
    """'pkg.mod:function' rather than a file path."""
    mod, sep, fn = target.partition(":")
    return bool(sep) and fn.isidentifier() and all(p.isidentifier() for p in mod.split(".")) and not Path(target).exists()


def make_generator(target: str | Path, *, n_ctx: int = 512) -> Generator:
    """A generator for an artifact path (format detected from its bytes) or a "module:function" callable."""
    if isinstance(target, str) and is_callable_spec(target):
        return CallableGenerator(target)
    from harness.artifacts import inspect

    info = inspect(Path(target))
    path = Path(info.path)
    if info.format == "gguf":
        return LlamaGenerator(path, sha256=info.sha256, n_ctx=n_ctx)
    if info.format == "onnx":
        return OnnxGenerator(path, sha256=info.sha256)
    if info.format == "tflite":
        return TfliteGenerator(path, sha256=info.sha256)
    raise ArtifactError(f"{path}: golden runs support gguf, onnx and tflite, not {info.format}")
