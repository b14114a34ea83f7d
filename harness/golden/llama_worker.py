"""Child process that generates golden outputs with llama-cpp-python (run as `python -m harness.golden.llama_worker`).

llama.cpp aborts the whole process on some malformed GGUFs (SIGABRT, not an exception), so it never runs in the
harness process. Protocol: one JSON request on stdin, one JSON line per item on stdout, flushed as it goes, so
a crash still leaves every finished item and says which item was in flight.
Request: {"model": PATH, "n_ctx": N, "n_threads": N|null, "items": [{"id", "prompt", "max_tokens",
"temperature", "seed", "repeat"}]}. Lines: {"event": "loaded", "n_vocab"}, {"event": "start", "id"},
{"event": "item", "id", "text", "text2"?, "tokens", "logits": {"shape", "dtype", "finite", "argmax", "top_ids",
"top_values", "at_ids"?}} where at_ids are the logits at the item's "logit_ids" (the teacher's top tokens),
{"event": "item_error", "id", "error"}, {"event": "fatal", "error"}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# Fixed sampler settings, so that a (temperature, seed) pair means the same on every host.
SAMPLER = {"top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0}
TOP_K = 8  # logits recorded per prompt as a reference (the teacher's most likely next tokens)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _generate(llm: Any, prompt: str, max_tokens: int, temperature: float, seed: int) -> tuple[str, int]:
    llm.reset()
    llm.set_seed(seed)
    out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=temperature, seed=seed, **SAMPLER)
    return str(out["choices"][0]["text"]), int(out["usage"]["completion_tokens"])


def main() -> int:
    req = json.loads(sys.stdin.read())
    try:
        import llama_cpp
        import numpy as np

        threads = int(req.get("n_threads") or 1)
        llm: Any = llama_cpp.Llama(model_path=req["model"], n_ctx=int(req.get("n_ctx") or 512), seed=0,
                                   n_threads=threads, n_threads_batch=threads, verbose=False)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises a UserError
        _emit({"event": "fatal", "error": f"{type(e).__name__}: {e}"})
        return 1
    n_ctx = llm.n_ctx()
    _emit({"event": "loaded", "n_vocab": llm.n_vocab(), "n_ctx": n_ctx, "version": llama_cpp.__version__})
    for it in req["items"]:
        _emit({"event": "start", "id": it["id"]})
        try:
            toks = llm.tokenize(it["prompt"].encode("utf-8"), add_bos=True)
            if len(toks) + it["max_tokens"] > n_ctx:
                raise ValueError(f"prompt of {len(toks)} tokens + max_tokens {it['max_tokens']} exceed n_ctx {n_ctx}")
            llm.reset()
            llm.eval(toks)
            # Llama.scores stays zero unless logits_all: read the context's logits of the last prompt token.
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()
            top = np.argsort(-logits, kind="stable")[:TOP_K]
            info: dict[str, Any] = {"shape": list(logits.shape), "dtype": str(logits.dtype),
                                    "finite": bool(np.isfinite(logits).all()), "argmax": int(logits.argmax()),
                                    "top_ids": [int(i) for i in top], "top_values": [float(str(logits[i])) for i in top]}
            if it.get("logit_ids") is not None:
                ids = [int(i) for i in it["logit_ids"]]
                bad = [i for i in ids if not 0 <= i < logits.shape[0]]
                info["at_ids"] = None if bad else [float(logits[i]) for i in ids]
            text, n = _generate(llm, it["prompt"], it["max_tokens"], it["temperature"], it["seed"])
            res: dict[str, Any] = {"event": "item", "id": it["id"], "text": text, "tokens": n, "logits": info}
            if it.get("repeat"):
                res["text2"], _ = _generate(llm, it["prompt"], it["max_tokens"], it["temperature"], it["seed"])
            _emit(res)
        except Exception as e:  # noqa: BLE001 - one item's failure is that item's result
            _emit({"event": "item_error", "id": it["id"], "error": f"{type(e).__name__}: {e}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
