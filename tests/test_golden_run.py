"""Golden runs end to end: real llama.cpp on the sample GGUFs, onnxruntime and LiteRT on the sample tensor models.

The shipped example suite's references come from the tiny llama sample with seed 0, so that artifact passes
it (self-consistency) and a model with other weights fails it, item by item, with readable reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ArtifactError, UserError
from harness.golden.record import record_references
from harness.golden.suite import SCHEMA, load_suite
from harness.golden.tiers import file_sha256, run_golden

pytest.importorskip("llama_cpp")
samples = pytest.importorskip("harness.samples")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "golden" / "example.jsonl"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGEFARM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("samples")
    onnx, tflite, gguf = samples.write_samples(d, "tiny")
    return {
        "onnx": onnx, "tflite": tflite, "gguf": gguf,
        "gguf_other": samples.write_gguf(d / "other.gguf", samples.gguf_model.TINY, seed=1),
        "onnx_other": samples.write_onnx(d / "other.onnx", samples.onnx_model.TINY, seed=1),
        "broken": samples.write_broken_gguf(d / "dupvocab.gguf"),
        "truncated": samples.write_truncated(gguf, d / "truncated.gguf"),
    }


def subset_ids(per_tag: int = 3) -> list[str]:
    """A few items of every tag of the example suite: a quick but representative run."""
    chosen: list[str] = []
    counts: dict[str, int] = {}
    for it in load_suite(EXAMPLE).items:
        if any(counts.get(t, 0) < per_tag for t in it.tags):
            chosen.append(it.id)
            for t in it.tags:
                counts[t] = counts.get(t, 0) + 1
    return chosen


def write(path: Path, *lines: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def test_example_suite_is_valid_and_covers_the_edge_cases() -> None:
    s = load_suite(EXAMPLE)
    assert 250 <= len(s.items) <= 400
    tags = {t for i in s.items for t in i.tags}
    assert {"short", "incomplete", "noisy", "typo", "casing", "punctuation", "mixed-language", "sampled"} <= tags
    assert s.header.teacher is not None and s.header.teacher.sha256


def test_example_references_come_from_the_tiny_sample(art: dict[str, Path]) -> None:
    teacher = load_suite(EXAMPLE).header.teacher
    assert teacher is not None and teacher.sha256 == file_sha256(art["gguf"])


def test_teacher_passes_its_own_suite(art: dict[str, Path]) -> None:
    ids = subset_ids()
    r = run_golden(EXAMPLE, art["gguf"], ids=ids, determinism_items=len(ids))
    # The references were recorded on x86-64 with the portable llama.cpp build (GGML_NATIVE=OFF); other CPU
    # kernels may round differently and flip a near-tie in greedy decoding, which the suite's thresholds and
    # min_pass_rate absorb.
    assert r.outcome == "pass", r.markdown()
    assert r.pass_rate >= 0.9 and r.behaviour_stability == 1.0
    assert {c.name for c in r.items[0].checks} == {"shape", "dtype", "finite", "tolerance", "determinism"}
    assert r.items[0].checks[0].detail == "logits [512]"
    tol = next(c for c in r.items[0].checks if c.name == "tolerance")
    assert tol.outcome == "pass" and "max |diff| 0 " in tol.detail
    wl = r.workload_fields()
    assert wl["quality"] == r.pass_rate and wl["behaviour_stability"] == 1.0 and wl["golden_outcome"] == "pass"
    json.dumps(r.to_dict())


def test_other_weights_fail_with_readable_reasons(art: dict[str, Path]) -> None:
    ids = subset_ids(1)
    r = run_golden(EXAMPLE, art["gguf_other"], ids=ids, determinism_items=2)
    assert r.outcome == "fail" and r.pass_rate < 0.5
    bad = next(i for i in r.items if i.outcome == "fail")
    # Tier 1: its logits are not the teacher's (the example sets logits_atol); tier 2: its text differs.
    assert "tolerance: logits at the teacher's top 8 tokens: max |diff|" in bad.reason
    assert "similarity" in bad.reason and "< 0.8" in bad.reason and "output" in bad.reason
    md = r.markdown()
    assert "FAIL" in md and f"`{bad.id}`" in md


def test_reference_embeddings_are_cached_on_disk(art: dict[str, Path], cache_dir: Path) -> None:
    ids = subset_ids(1)[:6]
    first = run_golden(EXAMPLE, art["gguf_other"], ids=ids, determinism_items=0)
    (cache,) = (cache_dir / "golden-embeddings").glob("*.npz")
    with np.load(cache) as z:
        assert len(z["keys"]) == len(ids) and z["vecs"].shape == (len(ids), 384)
    from harness.golden.embedder import Embedder

    fresh = Embedder(backend="numpy")
    assert len(fresh.load_cache(cache)) == len(ids)
    again = run_golden(EXAMPLE, art["gguf_other"], ids=ids, determinism_items=0, embedder=fresh)
    assert [i.scores["similarity"] for i in again.items] == pytest.approx(
        [i.scores["similarity"] for i in first.items], abs=1e-5)


def test_llama_abort_is_reported_as_a_signal(art: dict[str, Path]) -> None:
    with pytest.raises(ArtifactError, match="SIGABRT while loading"):
        run_golden(EXAMPLE, art["broken"], ids=subset_ids(1))


def test_truncated_gguf_is_an_artifact_error(art: dict[str, Path]) -> None:
    with pytest.raises(ArtifactError):
        run_golden(EXAMPLE, art["truncated"], ids=subset_ids(1))


def test_record_from_gguf_then_run(art: dict[str, Path], tmp_path: Path) -> None:
    suite = write(tmp_path / "s.jsonl",
                  {"schema": SCHEMA, "name": "mini", "defaults": {"criterion": {"min_similarity": 0.9}}},
                  {"id": "a", "prompt": "The edge farm", "tags": ["short"]},
                  {"id": "b", "prompt": "Wie spät ist es?", "tags": ["mixed-language"],
                   "generation": {"temperature": 0.7, "seed": 3, "max_tokens": 6}})
    rec = record_references(suite, art["gguf"])
    assert rec.recorded == 2 and rec.teacher.sha256 == file_sha256(art["gguf"])
    s = load_suite(suite)
    assert all(isinstance(i.reference, str) for i in s.items)
    assert s.items[1].generation.max_tokens == 6
    again = run_golden(suite, art["gguf"])
    assert again.pass_rate == 1.0 and all(i.scores["similarity"] == 1.0 and i.scores["chrf"] == 1.0
                                          for i in again.items)


def nondeterministic(prompt: str, **_: object) -> str:
    import random

    return f"{prompt} {random.random()}"


def echo(prompt: str, *, max_tokens: int, temperature: float, seed: int) -> str:
    return prompt.lower()


def test_callable_teacher_and_nondeterminism_refused(tmp_path: Path) -> None:
    suite = write(tmp_path / "s.jsonl", {"schema": SCHEMA, "defaults": {"criterion": {"min_chrf": 0.9}}},
                  {"id": "a", "prompt": "Hello There"})
    with pytest.raises(UserError, match=r"s.jsonl:2 \(id 'a'\): the teacher is not deterministic"):
        record_references(suite, f"{__name__}:nondeterministic")
    assert "reference" not in suite.read_text()
    record_references(suite, f"{__name__}:echo")
    assert load_suite(suite).items[0].reference == "hello there"
    with pytest.raises(UserError, match="cannot load the callable"):
        record_references(suite, "no_such_module_xyz:fn")


def test_tensor_items_onnx(art: dict[str, Path], tmp_path: Path) -> None:
    suite = write(tmp_path / "t.jsonl",
                  {"schema": SCHEMA, "defaults": {"criterion": {"atol": 1e-4, "rtol": 1e-3}}},
                  {"id": "seq4", "input": {"input_ids": {"dtype": "int64", "shape": [1, 4], "seed": 1, "high": 512}}},
                  {"id": "zeros", "input": {"input_ids": {"dtype": "int64", "shape": [2, 3], "values": [0] * 6}}})
    record_references(suite, art["onnx"])
    r = run_golden(suite, art["onnx"])
    assert r.outcome == "pass" and r.behaviour_stability == 1.0, r.markdown()
    assert {c.name for c in r.items[0].checks} == {"shape", "dtype", "finite", "determinism", "tolerance"}
    other = run_golden(suite, art["onnx_other"])
    assert other.outcome == "fail" and len(other.unit_failures) == 2
    assert "tolerance: logits: max |diff|" in other.items[0].reason


def test_tensor_items_tflite(art: dict[str, Path], tmp_path: Path) -> None:
    suite = write(tmp_path / "t.jsonl", {"schema": SCHEMA, "defaults": {"criterion": {"atol": 1e-5}}},
                  {"id": "n", "input": {"features": {"dtype": "float32", "shape": [1, 64], "seed": 0}}})
    record_references(suite, art["tflite"])
    assert run_golden(suite, art["tflite"]).outcome == "pass"


def bad_student(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    x = inputs["features"]
    if float(x.sum()) > 0:
        return {"probs": np.full((1, 10), np.nan, dtype=np.float32)}
    return {"probs": np.zeros((1, 9), dtype=np.float64)}


def test_unit_tier_catches_nan_shape_and_dtype(art: dict[str, Path], tmp_path: Path) -> None:
    suite = write(tmp_path / "t.jsonl", {"schema": SCHEMA, "defaults": {"criterion": {"atol": 1e-5}}},
                  {"id": "pos", "input": {"features": {"dtype": "float32", "shape": [1, 64], "values": [1.0] * 64}}},
                  {"id": "neg", "input": {"features": {"dtype": "float32", "shape": [1, 64], "values": [-1.0] * 64}}})
    record_references(suite, art["tflite"])
    r = run_golden(suite, f"{__name__}:bad_student")
    pos, neg = r.items
    assert pos.outcome == "fail" and "finite: probs: 10 NaN/inf" in pos.reason
    assert neg.outcome == "fail" and "shape: probs: shape [1, 9], reference [1, 10]" in neg.reason
    assert r.outcome == "fail" and "unit correctness" in r.reason


@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_example_tensor_suites_pass_on_the_tiny_samples(art: dict[str, Path], kind: str) -> None:
    suite = ROOT / "golden" / f"example_{kind}_tiny.jsonl"
    r = run_golden(suite, art[kind], determinism_items=None)
    assert r.outcome == "pass", r.markdown()
    assert r.behaviour_stability == 1.0
    if kind == "onnx":
        assert run_golden(suite, art["onnx_other"]).outcome == "fail"
