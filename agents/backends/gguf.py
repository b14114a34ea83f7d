"""GGUF through llama-cpp-python: one inference is one request (prompt in, new_tokens out, greedy)."""

from __future__ import annotations

import math
import time
from typing import Any, List

from agents.backends import Backend, accel
from agents.procfs import cpus
from agents.spec import WorkloadSpec


class GgufBackend(Backend):
    def __init__(self, spec: WorkloadSpec) -> None:
        super().__init__(spec)
        self.g = spec.gguf
        import llama_cpp  # type: ignore[import-not-found, import-untyped, unused-ignore]
        self.llama_cpp = llama_cpp
        self.threads = spec.threads or len(cpus())
        self.runtime = {"name": "llama-cpp-python", "version": str(llama_cpp.__version__), "threads": self.threads}
        self.samples = {"ttft_ms": [], "prefill_tokens_per_s": [], "decode_tokens_per_s": [], "itl_ms": []}
        self.llm: Any = None

    def load(self) -> None:
        want = self.spec.backend or "cpu"
        gpu = want == "gpu" and bool(self.llama_cpp.llama_supports_gpu_offload())
        note = None
        if want not in ("cpu", "gpu"):
            note = "llama.cpp has no %s backend: ran on the CPU" % want
        elif want == "gpu" and not gpu:
            note = "requested gpu, but this llama-cpp-python build has no GPU backend: ran on the CPU"
        accel.record(self.runtime, self.spec.backend, "gpu" if gpu else "cpu", note)
        self.runtime["n_gpu_layers"] = 999 if gpu else 0
        self.runtime["flash_attn"] = "off"  # set below; the native flavour passes llama-bench -fa 0 (same kernels)
        self.llm = self.llama_cpp.Llama(n_gpu_layers=999 if gpu else 0,
            model_path=self.spec.artifact, n_ctx=self.g.n_ctx, n_batch=max(512, self.g.prompt_tokens),
            n_threads=self.threads, n_threads_batch=self.threads, seed=self.spec.seed, flash_attn=False,
            verbose=True)  # llama.cpp logs go to the log the parent reads: a failure says why

    def prepare(self) -> None:
        import random
        n = self.g.prompt_tokens
        if self.g.prompt:
            toks = list(self.llm.tokenize(self.g.prompt.encode("utf-8"), add_bos=True))
            toks = (toks * (n // max(1, len(toks)) + 1))[:n]
        else:  # llama-bench style: BOS, then seeded random token ids
            rng = random.Random(self.spec.seed)
            toks = [self.llm.token_bos()] + [rng.randrange(self.llm.n_vocab()) for _ in range(n - 1)]
        self.prompt = toks
        self.input_shapes = {"prompt_tokens": [len(toks)], "new_tokens": [self.g.new_tokens]}
        # Greedy sampling in C (llama_sampler_sample: argmax over the last logits), as llama-bench does not
        # sample at all; the end-of-sequence token is ignored so every request decodes new_tokens.
        self.sampler = self.llama_cpp.llama_sampler_init_greedy()

    def run_once(self) -> None:
        llm, pc = self.llm, time.perf_counter
        sample, smpl, ctx = self.llama_cpp.llama_sampler_sample, self.sampler, self.llm.ctx
        new = self.g.new_tokens
        itl: List[float] = []
        llm.reset()
        t0 = pc()
        llm.eval(self.prompt)
        t1 = pc()
        tok = sample(smpl, ctx, -1)
        prev = t2 = pc()
        for _ in range(new - 1):
            llm.eval([tok])
            tok = sample(smpl, ctx, -1)
            t = pc()
            itl.append(t - prev)
            prev = t
        if self.recording:
            s = self.samples
            s["ttft_ms"].append((t2 - t0) * 1e3)
            s["prefill_tokens_per_s"].append(len(self.prompt) / (t1 - t0))
            s["decode_tokens_per_s"].append(len(itl) / math.fsum(itl))
            s["itl_ms"].extend(x * 1e3 for x in itl)
