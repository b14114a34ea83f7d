"""ONNX through onnxruntime: one inference is one InferenceSession.run on inputs set once.

The execution provider follows spec.backend (accel.py); the record says which providers the session has.
"""

from __future__ import annotations

from typing import Any, Dict, List

from agents.backends import Backend, accel, check_names
from agents.backends.inputs import make_input, np_dtype
from agents.procfs import cpus
from agents.spec import WorkloadSpec


class OnnxBackend(Backend):
    def __init__(self, spec: WorkloadSpec) -> None:
        super().__init__(spec)
        import onnxruntime as ort  # type: ignore[import-not-found, import-untyped, unused-ignore]
        self.ort = ort
        # Threads as used, never null: asked, else the CPUs this process may run on (set explicitly).
        self.threads = spec.threads or len(cpus())
        self.runtime = {"name": "onnxruntime", "version": str(ort.__version__), "threads": self.threads}

    def load(self) -> None:
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = int(self.threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        providers, note = accel.ort_providers(self.ort, self.spec.backend)
        self.sess = self.ort.InferenceSession(self.spec.artifact, sess_options=so, providers=providers)
        used = list(self.sess.get_providers())
        ran, ran_note = accel.ort_ran(self.spec.backend, used)
        self.runtime["providers"] = used
        accel.record(self.runtime, self.spec.backend, ran, note or ran_note)

    def prepare(self) -> None:
        import numpy as np
        inputs = self.sess.get_inputs()
        named = sorted({d for inp in inputs for d in inp.shape if isinstance(d, str)})
        check_names("input_shapes", self.spec.input_shapes, [inp.name for inp in inputs])
        check_names("dynamic_dims", self.spec.dynamic_dims, named)
        rng = np.random.default_rng(self.spec.seed)
        self.feeds: Dict[str, Any] = {}
        for inp in inputs:
            shape: List[int] = list(self.spec.input_shapes.get(inp.name) or [
                d if isinstance(d, int) and d > 0 else
                int(self.spec.dynamic_dims.get(d, 1)) if isinstance(d, str) else 1 for d in inp.shape])
            self.feeds[inp.name] = make_input(np, rng, inp.name, shape, np_dtype(np, inp.type))
            self.input_shapes[inp.name] = shape
        self.out_names = [o.name for o in self.sess.get_outputs()]

    def run_once(self) -> None:
        self.sess.run(self.out_names, self.feeds)
