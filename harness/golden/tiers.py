"""The first two tiers of the distillation guide's three-tier gate (the third, performance, is the gate's rules).

1. Unit correctness: output shapes and dtypes, finite values, determinism with a fixed seed, and tensor
   outputs within atol/rtol of the recorded reference outputs (as numpy.allclose: |a - r| <= atol + rtol |r|).
   For GGUF models the checked output is the next-token logits after each prompt (shape (n_vocab,), float32,
   finite, and with criterion.logits_atol within that of the teacher's at its top-8 tokens).
2. Golden behaviour: each prompt's output against its reference by embedding cosine (all-MiniLM-L6-v2), with
   chrF and ROUGE-L as secondary measures; an item passes when every measure its criterion names holds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from harness.golden.embedder import MODEL_NAME, Embedder, default_embedder, text_key
from harness.golden.generators import Generator, Output, make_generator
from harness.golden.results import Check, GoldenResult, ItemResult, Outcome
from harness.golden.similarity import chrf, rouge_l
from harness.golden.suite import Item, Suite, load_suite
from harness.records import now_rfc3339


def repeat_ids(items: Sequence[Item], n: int | None) -> set[str]:
    """Which items to run twice for the determinism check: all (None), or n spread evenly over the suite."""
    if n is None or n >= len(items):
        return {i.id for i in items}
    if n <= 0:
        return set()
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return {items[int(k)].id for k in idx}


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def tensor_checks(item: Item, out: Output) -> tuple[list[Check], dict[str, float]]:
    """Tier 1 for a tensor item: per reference output, presence, shape, dtype, finite, determinism, tolerance."""
    checks: list[Check] = []
    scores: dict[str, float] = {}
    got = out.tensors or {}
    ref = item.reference if isinstance(item.reference, dict) else {}
    atol, rtol = item.criterion.atol or 0.0, item.criterion.rtol or 0.0
    worst_abs, worst_rel = 0.0, 0.0
    for name, spec in ref.items():
        arr = got.get(name)
        if arr is None and len(got) == 1 and len(ref) == 1:
            arr = next(iter(got.values()))  # one output each side: names may differ between runtimes
        if arr is None:
            checks.append(Check("outputs", "fail", f"output {name!r} missing; the model gave {sorted(got)}"))
            continue
        want = spec.array()
        if list(arr.shape) != list(want.shape):
            checks.append(Check("shape", "fail", f"{name}: shape {list(arr.shape)}, reference {list(want.shape)}"))
            continue
        checks.append(Check("shape", "pass", f"{name}: {list(arr.shape)}"))
        checks.append(Check("dtype", "pass" if arr.dtype == want.dtype else "fail",
                            f"{name}: {arr.dtype}" + ("" if arr.dtype == want.dtype else f", reference {want.dtype}")))
        finite = bool(np.isfinite(arr).all()) if np.issubdtype(arr.dtype, np.floating) else True
        checks.append(Check("finite", "pass" if finite else "fail",
                            f"{name}: " + ("all finite" if finite else f"{int((~np.isfinite(arr)).sum())} NaN/inf")))
        if out.repeat_tensors is not None:
            again = out.repeat_tensors.get(name, next(iter(out.repeat_tensors.values()), None))
            same = again is not None and again.shape == arr.shape and bool(np.array_equal(again, arr, equal_nan=True))
            checks.append(Check("determinism", "pass" if same else "fail",
                                f"{name}: " + ("identical on a second run" if same else "differs on a second run")))
        a, w = arr.astype(np.float64), want.astype(np.float64)
        diff = np.abs(a - w)
        max_abs = float(diff.max()) if diff.size else 0.0
        max_rel = float((diff / np.maximum(np.abs(w), 1e-12)).max()) if diff.size else 0.0
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
        ok = bool(np.all(diff <= atol + rtol * np.abs(w))) and finite
        checks.append(Check("tolerance", "pass" if ok else "fail",
                            f"{name}: max |diff| {_fmt(max_abs)} (atol {atol:g}, rtol {rtol:g})"))
    scores.update(max_abs_err=worst_abs, max_rel_err=worst_rel)
    return checks, scores


def text_checks(item: Item, out: Output) -> list[Check]:
    """Tier 1 for a text item: the next-token logits' shape, dtype, finiteness and (with criterion.logits_atol)
    closeness to the teacher's at its top tokens; determinism if repeated."""
    checks: list[Check] = []
    lg = out.logits
    if lg is not None:
        want = out.expected_logits_shape
        ok_shape = want is None or list(lg["shape"]) == want
        checks.append(Check("shape", "pass" if ok_shape else "fail",
                            f"logits {lg['shape']}" + ("" if ok_shape else f", expected {want} (n_vocab)")))
        checks.append(Check("dtype", "pass" if lg["dtype"] == "float32" else "fail", f"logits {lg['dtype']}"))
        checks.append(Check("finite", "pass" if lg["finite"] else "fail",
                            "logits all finite" if lg["finite"] else "logits contain NaN/inf"))
    atol, ref = item.criterion.logits_atol, item.reference_logits
    if atol is not None and ref is not None:
        got = lg.get("at_ids") if lg else None
        if got is None:
            checks.append(Check("tolerance", "fail", "no logits at the teacher's top tokens (not a GGUF, or a "
                                                     "smaller vocabulary)"))
        else:
            # Both sides are float32 logits (references are stored as float32's shortest decimals).
            diff = float(np.max(np.abs(np.asarray(got, np.float32).astype(np.float64)
                                       - np.asarray(ref.values, np.float32).astype(np.float64))))
            checks.append(Check("tolerance", "pass" if diff <= atol else "fail",
                                f"logits at the teacher's top {len(ref.ids)} tokens: max |diff| {_fmt(diff)} "
                                f"(logits_atol {atol:g})"))
    if out.repeat_text is not None:
        same = out.repeat_text == out.text
        checks.append(Check("determinism", "pass" if same else "fail",
                            "same text on a second run with the same seed" if same
                            else f"second run with the same seed gave {out.repeat_text[:60]!r}"))
    return checks


def _item_result(item: Item, out: Output, checks: list[Check], scores: dict[str, float]) -> ItemResult:
    c = item.criterion
    thresholds = {k: v for k, v in (("similarity", c.min_similarity), ("chrf", c.min_chrf),
                                    ("rouge_l", c.min_rouge_l), ("atol", c.atol), ("rtol", c.rtol),
                                    ("logits_atol", c.logits_atol)) if v is not None}
    repeated = [ch for ch in checks if ch.name == "determinism"]
    det = None if not repeated else all(ch.outcome == "pass" for ch in repeated)
    failed_unit = [ch for ch in checks if ch.outcome == "fail"]
    below = [f"{k} {scores[k]:.3f} < {v:g}" for k, v in thresholds.items() if k in scores and scores[k] < v]
    outcome: Outcome = "fail" if failed_unit or below else "pass"
    if failed_unit or below:
        parts = [f"{ch.name}: {ch.detail}" for ch in failed_unit] + below
        reason = "; ".join(parts) + (f" (output {(out.text or '')[:60]!r})" if item.kind == "text" else "")
    elif item.kind == "tensor":
        reason = f"within tolerance (max |diff| {_fmt(scores.get('max_abs_err', 0.0))})"
    else:
        reason = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
    return ItemResult(id=item.id, line=item.line, kind=item.kind, tags=list(item.tags), outcome=outcome,
                      reason=reason, checks=checks, scores=scores, thresholds=thresholds, output=out.text,
                      deterministic=det)


def reference_cache_path(suite_sha256: str) -> Path:
    """Where the embeddings of a suite's references are kept between runs ($EDGEFARM_CACHE or ~/.cache/edgefarm)."""
    root = Path(os.environ.get("EDGEFARM_CACHE") or Path.home() / ".cache" / "edgefarm")
    return root / "golden-embeddings" / f"{suite_sha256[:32]}.npz"


def evaluate(items: Sequence[Item], outputs: Sequence[Output], embedder: Embedder | None = None, *,
             reference_cache: Path | None = None) -> list[ItemResult]:
    """Score outputs (in item order) against the items' references: tiers 1 and 2.

    An output identical to its reference has similarity 1 without running the embedder. `reference_cache`:
    an .npz of reference embeddings, read if present and written after the references were embedded.
    """
    by_id = {o.id: o for o in outputs}
    text_pairs = [(it, by_id[it.id]) for it in items
                  if it.kind == "text" and it.id in by_id and by_id[it.id].error is None and by_id[it.id].text is not None]
    sims: dict[str, float] = {it.id: 1.0 for it, o in text_pairs
                              if it.criterion.min_similarity is not None and o.text == it.reference}
    needs_embedding = [(it, o) for it, o in text_pairs if it.criterion.min_similarity is not None and it.id not in sims]
    if needs_embedding:
        emb = embedder or default_embedder()
        on_file = emb.load_cache(reference_cache) if reference_cache is not None and reference_cache.exists() else set()
        ref_texts = [str(it.reference) for it, _ in needs_embedding]
        new_refs = [t for t in ref_texts if text_key(t) not in on_file]
        refs = emb.embed(ref_texts)
        hyps = emb.embed([str(o.text) for _, o in needs_embedding])
        for (it, _), r, h in zip(needs_embedding, refs, hyps):
            sims[it.id] = float(np.dot(r, h))
        if reference_cache is not None and new_refs:
            try:
                emb.save_cache(reference_cache, new_refs)
            except OSError:
                pass  # a read-only cache directory only costs time
    results: list[ItemResult] = []
    for it in items:
        out = by_id.get(it.id) or Output(id=it.id, error="no output produced")
        if out.error is not None:
            results.append(ItemResult(id=it.id, line=it.line, kind=it.kind, tags=list(it.tags), outcome="error",
                                      reason=out.error))
            continue
        if it.kind == "tensor":
            checks, scores = tensor_checks(it, out)
        elif out.text is None:
            results.append(ItemResult(id=it.id, line=it.line, kind=it.kind, tags=list(it.tags), outcome="error",
                                      reason="the model returned tensors for a text prompt"))
            continue
        else:
            checks = text_checks(it, out)
            ref = str(it.reference)
            scores = {"similarity": sims[it.id]} if it.id in sims else {}
            scores.update(chrf=chrf(out.text, ref), rouge_l=rouge_l(out.text, ref))
        results.append(_item_result(it, out, checks, scores))
    return results


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_golden(suite: Path | Suite, target: str | Path | Generator, *, determinism_items: int | None = 16,
               ids: Collection[str] | None = None, embedder: Embedder | None = None, n_ctx: int = 512) -> GoldenResult:
    """Run a golden suite against an artifact (path), a "module:function" callable, or a Generator.

    `determinism_items`: how many items (spread evenly) run twice with the same seed; None runs all twice.
    `ids`: only these items (the pytest plugin may select); the pass rate is over the items run.
    """
    s = suite if isinstance(suite, Suite) else load_suite(Path(suite))
    items = [i for i in s.items if ids is None or i.id in ids]
    gen: Generator = make_generator(target, n_ctx=n_ctx) if isinstance(target, (str, Path)) else target
    started, t0 = now_rfc3339(), time.monotonic()
    outputs = gen.generate(items, repeat_ids(items, determinism_items))
    suite_sha = file_sha256(s.path)
    results = evaluate(items, outputs, embedder, reference_cache=reference_cache_path(suite_sha))
    d = gen.describe
    teacher = s.header.teacher
    uses_embedder = any(i.criterion.min_similarity is not None for i in items)
    return GoldenResult(
        suite=str(s.path), suite_name=s.header.name, suite_sha256=suite_sha,
        target={"kind": d.kind, "ref": d.ref, "sha256": d.sha256, "runtime": d.runtime},
        teacher=None if teacher is None else {k: v for k, v in vars(teacher).items() if v is not None},
        embedder=MODEL_NAME if uses_embedder else None, min_pass_rate=s.header.min_pass_rate, items=results,
        started_at=started, finished_at=now_rfc3339(), duration_s=time.monotonic() - t0,
    )
