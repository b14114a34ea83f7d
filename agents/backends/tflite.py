"""TFLite through LiteRT (ai_edge_litert), else tflite_runtime: one inference is one Interpreter.invoke.

TFLite inputs have no named dimensions: `dynamic_dims` does not apply (a dynamic axis takes 1, or the
shape given in `input_shapes`).
"""

from __future__ import annotations

from typing import Any, Dict

from agents.backends import Backend, accel, check_names
from agents.backends.inputs import make_input
from agents.dists import dist_versions
from agents.procfs import cpus
from agents.spec import WorkloadSpec


class TfliteBackend(Backend):
    def __init__(self, spec: WorkloadSpec) -> None:
        super().__init__(spec)
        try:
            from ai_edge_litert import interpreter as tfl  # type: ignore[import-not-found, import-untyped, unused-ignore]
            dist = "ai-edge-litert"
        except ImportError:
            from tflite_runtime import interpreter as tfl  # type: ignore[import-not-found, import-untyped, unused-ignore]
            dist = "tflite-runtime"
        self.threads = spec.threads or len(cpus())  # as used, never null: set explicitly
        self.runtime = {"name": dist, "version": dist_versions((dist,)).get(dist, "unknown"), "threads": self.threads}
        self.tfl = tfl

    def load(self) -> None:
        delegates, ran, note = accel.tflite_delegate(self.tfl, self.spec.backend)
        kw: Dict[str, Any] = {"model_path": self.spec.artifact, "num_threads": int(self.threads)}
        if delegates:
            kw["experimental_delegates"] = delegates
        self.it = self.tfl.Interpreter(**kw)
        accel.record(self.runtime, self.spec.backend, ran, note)
        details = self.it.get_input_details()
        check_names("input_shapes", self.spec.input_shapes, [d["name"] for d in details])
        for d in details:
            sig = list(d.get("shape_signature", d["shape"]))
            want = self.spec.input_shapes.get(d["name"])
            if want is None and any(x < 0 for x in sig):
                want = [x if x > 0 else 1 for x in sig]
            if want is not None and list(want) != list(d["shape"]):
                self.it.resize_tensor_input(d["index"], list(want))
        self.it.allocate_tensors()

    def prepare(self) -> None:
        import numpy as np
        rng = np.random.default_rng(self.spec.seed)
        for d in self.it.get_input_details():
            shape = [int(x) for x in d["shape"]]
            self.it.set_tensor(d["index"], make_input(np, rng, d["name"], shape, d["dtype"]))
            self.input_shapes[d["name"]] = shape

    def run_once(self) -> None:
        self.it.invoke()
