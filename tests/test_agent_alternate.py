"""The agent's alternating mode (spec.alternate): two models in one process, requests in ABBA turns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent_helpers import onnx_students, run_spec
from agents.loops import alternating_loop
from agents.spec import SpecError, WorkloadSpec


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    return onnx_students(tmp_path_factory.mktemp("alt"), ("one-layer.onnx", 1, 0), ("three-layers.onnx", 3, 0))


def test_turns_alternate_abba_and_both_models_get_the_same_count() -> None:
    calls: list[str] = []
    lat_a, lat_b, wall = alternating_loop(lambda: calls.append("a"), lambda: calls.append("b"), 2, 6, 0.0, 60.0)
    assert "".join(calls) == "aabbbbaaaabb"  # turns of 2: A B, B A, A B
    assert len(lat_a) == len(lat_b) == 6 and wall > 0.0
    calls.clear()
    alternating_loop(lambda: calls.append("a"), lambda: calls.append("b"), 1, 3, 0.0, 60.0, max_runs=2)
    assert "".join(calls) == "abba"  # max_runs bounds each model's count


def test_one_process_measures_both_models_with_their_own_bytes_and_samples(two: tuple[Path, ...]) -> None:
    small, big = two
    res = run_spec(small, min_runs=60, min_s=0.0, alternate={"artifact": str(big)}).result
    assert res["status"] == "ok", res["message"]
    alt = res["alternate"]
    assert res["artifact_sha256"] == hashlib.sha256(small.read_bytes()).hexdigest()
    assert alt["artifact_sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    a, b = res["samples"]["latency_ms"], alt["samples"]["latency_ms"]
    assert len(a) == len(b) >= 60
    # three layers against one, measured side by side: the bigger model is slower in the same process
    assert alt["metrics"]["latency_ms_p50"]["value"] > res["metrics"]["latency_ms_p50"]["value"]
    for metrics in (res["metrics"], alt["metrics"]):  # both models were resident: no memory figure is either's
        assert not {"peak_rss_mib", "load_footprint_mib", "throughput_per_s"} & set(metrics)
        assert metrics["load_time_ms"]["value"] > 0
    assert res["workload"]["alternate"]["format"] == "onnx"  # the echo holds the detected format
    assert res["stopping"]["alternating_every"] == 1


def test_a_changed_alternate_file_is_refused_by_name(two: tuple[Path, ...]) -> None:
    small, big = two
    res = run_spec(small, min_runs=5, min_s=0.0,
                   alternate={"artifact": str(big), "artifact_sha256": "0" * 64}).result
    assert res["status"] == "error" and "sha256 mismatch" in res["message"] and str(big) in res["message"]
    assert not res["samples"]


def test_an_alternate_that_is_not_a_model_is_named(two: tuple[Path, ...], tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    res = run_spec(two[0], min_runs=5, min_s=0.0, alternate={"artifact": str(junk)}).result
    assert res["status"] == "error" and str(junk) in res["message"]


@pytest.mark.parametrize("alt, why", [({"artifact": ""}, "alternate.artifact"),
                                      ({"artifact": "x", "every": 0}, "alternate.every"),
                                      ({"artifact": "x", "format": "pt"}, "alternate.format"),
                                      ({"artifact": "x", "colour": 1}, "unknown key")])
def test_bad_alternate_specs_name_the_key(alt: dict[str, object], why: str) -> None:
    with pytest.raises(SpecError, match=why):
        WorkloadSpec.from_dict({"artifact": "m.onnx", "alternate": alt})


def test_alternating_refuses_adaptive_stopping() -> None:
    with pytest.raises(SpecError, match="alternate: alternating requests use fixed counts"):
        WorkloadSpec.from_dict({"artifact": "m.onnx", "alternate": {"artifact": "n.onnx"},
                                "adaptive": {"percentiles": [95.0], "rel_width": 0.05}})


def test_a_model_mismatch_in_the_alternate_names_the_alternate(tiny_samples: dict[str, Path]) -> None:
    """input_shapes naming what the second model lacks: the error names the second model's file and inputs."""
    res = run_spec(tiny_samples["onnx"], min_runs=5, min_s=0.0, input_shapes={"pixels": [1, 4]},
                   alternate={"artifact": str(tiny_samples["tflite"])}).result
    assert res["status"] == "error"
    assert res["message"].startswith(str(tiny_samples["tflite"]) + ": input_shapes: 'pixels' not in this model")
