"""Sweep student sizes x quantization settings; each artifact exported, optionally benchmarked and gated
on a farm device, and the Pareto front of memory vs quality written as JSON the HTML report can plot.

Output (sweep.json, schema "edgefarm.distill.sweep/1"): one point per artifact with its size, quality
(Spearman vs the teacher on held-out pairs), and the device's measured memory and latency when the
harness ran; `pareto` names the points no other point beats on both memory and quality.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from distill import farm
from distill.embed_student import StudentSpec
from distill.examples.embed import EmbedExampleConfig, distill_student, prepare
from distill.trainer import seed_everything

SCHEMA = "edgefarm.distill.sweep/1"
DEFAULT_SIZES: tuple[StudentSpec, ...] = (
    StudentSpec(layers=(1, 3, 5), heads=6, intermediate=768, embed_dim=64),
    StudentSpec(layers=(2, 5), heads=6, intermediate=768, embed_dim=64),
    StudentSpec(layers=(1, 3, 5), heads=4, intermediate=512, embed_dim=48),
    StudentSpec(layers=(0, 1, 2), hidden=256, heads=8, intermediate=1024, embed_dim=64),
)
QUANT_KEYS = ("fp32", "int8_ptq", "int8_qat", "int4_ptq", "int4_qat")


def pareto(points: Sequence[dict[str, Any]], x: str, y: str) -> list[str]:
    """Names of points not dominated (another point with x <= and y >=, one of them strictly)."""
    front = []
    for p in points:
        if p.get(x) is None or p.get(y) is None:
            continue
        dominated = any(q is not p and q.get(x) is not None and q.get(y) is not None
                        and q[x] <= p[x] and q[y] >= p[y] and (q[x] < p[x] or q[y] > p[y]) for q in points)
        if not dominated:
            front.append(p["name"])
    return front


def run_sweep(out: Path, sizes: Sequence[StudentSpec] = DEFAULT_SIZES, base: EmbedExampleConfig | None = None,
              bench: bool = True, policy: Path | None = None, int4: bool = True) -> dict[str, Any]:
    """Train every size once (teacher targets shared), export each quantization, bench + gate, write sweep.json."""
    t0 = time.monotonic()
    cfg = replace(base or EmbedExampleConfig(max_train=3000, epochs=1, qat_epochs=1), out=out)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    data = prepare(cfg, phases)
    points: list[dict[str, Any]] = []
    students = []
    for spec in sizes:
        rep = distill_student(data, cfg, spec, out, phases, int4=int4)
        students.append(rep)
        for key in QUANT_KEYS:
            if key not in rep:
                continue
            a = rep[key]
            points.append({"name": Path(a["path"]).name, "student": spec.name, "quant": key,
                           "parameters": rep["student_fp32_torch"]["parameters"], "bytes": a["bytes"],
                           "spearman_vs_teacher": a["spearman_vs_teacher"],
                           "paraphrase_accuracy": a["paraphrase_accuracy"], "path": a["path"]})
    result: dict[str, Any] = {"schema": SCHEMA, "teacher": data.report["teacher"], "corpus": data.report["corpus"],
                              "students": students}
    x_metric = "bytes"
    if bench:
        pol = policy or Path(__file__).with_name("examples") / "policy.toml"
        farm_res = farm.bench_and_gate([Path(p["path"]) for p in points], out, pol, spec=farm.EMBED_SPEC)
        result["farm"] = {k: v for k, v in farm_res.items() if k != "gate"}
        measured = farm.run_metrics(out)
        for p in points:
            m = measured.get(p["name"], {})
            p.update({"device": "local", "device_status": m.get("status"), "peak_rss_mib": m.get("peak_rss_mib"),
                      "latency_ms_p50": m.get("latency_ms_p50")})
        cells = {c["artifact"]: c["outcome"] for c in (farm_res.get("gate") or {}).get("cells", [])}
        for p in points:
            p["gate"] = cells.get(p["name"])
        if any(p.get("peak_rss_mib") is not None for p in points):
            x_metric = "peak_rss_mib"
    result.update({"x_metric": x_metric, "y_metric": "spearman_vs_teacher", "points": points,
                   "pareto": pareto(points, x_metric, "spearman_vs_teacher"),
                   "run": {"seconds": round(time.monotonic() - t0, 1), "phases": phases,
                           "loadavg_end": os.getloadavg()}})
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
