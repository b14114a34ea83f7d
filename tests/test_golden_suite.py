"""The suite validator: every problem names the file, the line and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.golden.suite import (
    SCHEMA, Criterion, Generation, Header, Item, SuiteInvalid, Tensor, load_suite, parse_suite, write_suite,
)

HEADER = {"schema": SCHEMA, "name": "t", "defaults": {"criterion": {"min_similarity": 0.8}}}
GOOD = {"id": "a", "prompt": "Hello", "reference": "Hello there", "tags": ["short"]}


def write(tmp_path: Path, *lines: Any) -> Path:
    p = tmp_path / "suite.jsonl"
    p.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return p


def problems(path: Path, **kw: Any) -> list[str]:
    return [str(e) for e in parse_suite(path, **kw)[1]]


def test_valid_suite_applies_defaults(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER, GOOD, {**GOOD, "id": "b", "criterion": {"min_chrf": 0.5}, "generation": {"seed": 7}})
    s = load_suite(p)
    assert [i.id for i in s.items] == ["a", "b"]
    assert s.items[0].criterion == Criterion(min_similarity=0.8)
    assert s.items[1].criterion == Criterion(min_similarity=0.8, min_chrf=0.5)
    assert s.items[1].generation == Generation(seed=7)
    assert s.items[1].line == 3 and s.kind == "text"


def test_unknown_key_names_file_line_key_and_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER, GOOD, {**GOOD, "id": "b", "criterion": {"min_simlarity": 0.8}})
    (msg,) = problems(p)
    assert f"{p}:3" in msg and "'criterion.min_simlarity'" in msg and "unknown key" in msg
    assert "min_similarity" in msg
    (msg,) = problems(write(tmp_path, HEADER, GOOD, {**GOOD, "id": "b", "promt": "x"}))
    assert ":3: key 'promt': unknown key" in msg and "did you mean 'prompt'" in msg


def test_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER, {**GOOD, "generation": {"max_tokens": "8"}}, {**GOOD, "id": "b", "tags": "short"})
    m1, m2 = problems(p)
    assert f"{p}:2: key 'generation.max_tokens': expected an integer, got str" in m1
    assert f"{p}:3: key 'tags': expected list of str" in m2


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, HEADER, GOOD, "", GOOD))
    assert ":4: key 'id': duplicate id 'a' (first on line 2)" in msg


def test_missing_reference_unless_recording(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER, {"id": "a", "prompt": "Hi"})
    (msg,) = problems(p)
    assert f"{p}:2: key 'reference': missing reference" in msg
    assert problems(p, require_reference=False) == []


def test_bad_json_and_non_object_lines(tmp_path: Path) -> None:
    m1, m2 = problems(write(tmp_path, HEADER, '{"id": "a", ', "[1, 2]", GOOD))
    assert ":2: not valid JSON" in m1 and ":3: expected a JSON object" in m2


def test_semantic_checks(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        {"id": "both", "prompt": "x", "input": {"x": {"dtype": "float32", "shape": [1], "values": [0]}}},
        {"id": "nocrit", "prompt": "x", "reference": "y"},
        {"id": "range", "prompt": "x", "reference": "y", "criterion": {"min_chrf": 7}},
        {"id": "t", "input": {"x": {"dtype": "float32", "shape": [2, 2], "values": [1, 2, 3]}},
         "reference": {"y": {"dtype": "float33", "shape": [1], "values": [0]}}, "criterion": {"atol": 1e-3}},
        {"id": "tstr", "input": {"x": {"dtype": "int64", "shape": [1], "seed": 1}}, "reference": "text",
         "criterion": {"min_similarity": 0.5}},
    )
    msgs = "\n".join(problems(p))
    assert ":1: key 'prompt': give exactly one of" in msgs
    assert ":2: key 'criterion': a text item needs at least one of" in msgs
    assert ":3: key 'criterion.min_chrf': must be between 0 and 1" in msgs
    assert ":4: key 'input.x.values': 3 values for shape [2, 2]" in msgs
    assert ":4: key 'reference.y.dtype': unknown dtype 'float33'" in msgs
    assert ":5: key 'reference': a tensor item's reference must be a table" in msgs
    assert ":5: key 'criterion.min_similarity': applies to text items only" in msgs


def test_header_problems(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, {"schema": "edgefarm.golden/9"}, GOOD | {"criterion": {"min_chrf": 0.1}}))
    assert ":1: key 'schema': this edgefarm reads" in msg
    msg = problems(write(tmp_path, {"schema": SCHEMA, "defaults": {"criterion": {"min_sim": 1}}}, GOOD))[0]
    assert ":1: key 'defaults.criterion.min_sim': unknown key" in msg


def test_load_raises_one_user_error_listing_all(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER, {"id": "a", "prompt": 3}, {"id": "b", "prompt": "x", "reference": "y", "bad": 1})
    with pytest.raises(SuiteInvalid) as ei:
        load_suite(p)
    assert "2 problem(s)" in str(ei.value) and len(ei.value.problems) == 2
    with pytest.raises(Exception, match="not found"):
        load_suite(tmp_path / "nope.jsonl")


def test_write_round_trip_with_tensors(tmp_path: Path) -> None:
    a = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    items = [
        Item(id="t1", line=0, criterion=Criterion(atol=1e-5, rtol=1e-4), generation=Generation(),
             input={"x": Tensor(dtype="float32", shape=[2, 3], seed=3)}, reference={"y": Tensor.of(a)}),
        Item(id="p1", line=0, criterion=Criterion(min_similarity=0.9), generation=Generation(max_tokens=5),
             prompt="Grüße, 世界", reference="ok", tags=("mixed-language",)),
    ]
    p = tmp_path / "rt.jsonl"
    write_suite(p, Header(schema=SCHEMA, name="rt"), items)
    s = load_suite(p)
    assert s.kind == "mixed" and s.header.name == "rt"
    ref = s.items[0].reference
    assert isinstance(ref, dict)
    np.testing.assert_array_equal(ref["y"].array(), a)  # float32 survives JSON exactly
    assert s.items[0].input is not None
    np.testing.assert_array_equal(s.items[0].input["x"].array(), items[0].input["x"].array())  # type: ignore[index]
    assert s.items[1].prompt == "Grüße, 世界" and s.items[1].tags == ("mixed-language",)


def test_logits_reference_checks(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        {"schema": SCHEMA, "defaults": {"criterion": {"min_chrf": 0.5, "logits_atol": 0.01}}},
        {"id": "ok", "prompt": "x", "reference": "y", "reference_logits": {"ids": [3, 1], "values": [0.5, 0.25]}},
        {"id": "nologits", "prompt": "x", "reference": "y"},
        {"id": "ragged", "prompt": "x", "reference": "y", "reference_logits": {"ids": [3, 1], "values": [0.5]}},
        {"id": "t", "input": {"x": {"dtype": "float32", "shape": [1], "values": [0]}},
         "reference": {"y": {"dtype": "float32", "shape": [1], "values": [0]}}, "criterion": {"atol": 0.1}},
    )
    msgs = "\n".join(problems(p))
    assert ":3: key 'reference_logits': missing: criterion.logits_atol needs the teacher's logits" in msgs
    assert ":4: key 'reference_logits': 'ids' and 'values' differ in length" in msgs
    assert ":5: key 'criterion.logits_atol': applies to text (GGUF) items only" in msgs
    assert ":2:" not in msgs
    s, _ = parse_suite(p)
    assert s.items[0].reference_logits is not None and s.items[0].reference_logits.ids == [3, 1]
