"""Sample artifacts load and run in their real runtimes, and are byte-deterministic."""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.samples import (
    GGUF_NAME, ONNX_NAME, TFLITE_NAME, gguf_model, onnx_model, tflite_model,
    write_broken_gguf, write_samples, write_truncated,
)
from harness.samples._atomic import atomic_target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("samples")
    return {p.name: p for p in write_samples(out, "tiny")}


def test_tiny_samples_are_small_fast_and_named(tmp_path: Path) -> None:
    start = time.perf_counter()
    paths = write_samples(tmp_path, "tiny")
    elapsed = time.perf_counter() - start
    assert [p.name for p in paths] == [ONNX_NAME, TFLITE_NAME, GGUF_NAME]
    for p in paths:
        assert 0 < p.stat().st_size < 5_000_000, p
    assert elapsed < 3.0
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(p.name for p in paths), "temp files left"


def test_onnx_runs_in_onnxruntime(tiny: dict[str, Path]) -> None:
    import onnx
    import onnxruntime as ort

    path = tiny[ONNX_NAME]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8 and model.opset_import[0].version == 17
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.type == "tensor(int64)" and inp.shape == ["batch", "seq"]
    vocab = onnx_model.TINY.vocab
    for batch, seq in ((1, 1), (3, 11)):
        ids = np.random.default_rng(seq).integers(0, vocab, (batch, seq), dtype=np.int64)
        (logits,) = sess.run(None, {inp.name: ids})
        assert logits.shape == (batch, seq, vocab)
        assert np.isfinite(logits).all()
    # Causal: changing the last token leaves the logits of earlier positions alone.
    ids2 = ids.copy()
    ids2[:, -1] = (ids2[:, -1] + 1) % vocab
    (logits2,) = sess.run(None, {inp.name: ids2})
    np.testing.assert_allclose(logits2[:, :-1], logits[:, :-1], atol=1e-5)


def test_tflite_matches_numpy_reference_in_litert(tiny: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    path = tiny[TFLITE_NAME]
    data = path.read_bytes()
    assert data[4:8] == b"TFL3"
    for w, b in tflite_model.mlp_weights(tflite_model.TINY):
        for const in (w, b):
            offset = data.find(const.tobytes())
            assert offset > 0 and offset % 16 == 0, "constant data must be 16-byte aligned"

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert list(inp["shape"]) == [1, tflite_model.TINY.n_in] and inp["dtype"] == np.float32
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, tflite_model.TINY.n_in)).astype(np.float32)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        np.testing.assert_allclose(y, tflite_model.reference_forward(x, tflite_model.TINY), rtol=1e-4, atol=1e-6)
    runner = interp.get_signature_runner(tflite_model.SIGNATURE_KEY)
    y_sig = runner(**{tflite_model.INPUT_NAME: x})[tflite_model.OUTPUT_NAME]
    np.testing.assert_allclose(y_sig, y, atol=1e-7)


def test_gguf_tokenizes_and_generates_in_llama_cpp(tiny: dict[str, Path]) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(tiny[GGUF_NAME]), verbose=False, n_ctx=128, n_threads=1, seed=0)
    assert llm.n_vocab() == gguf_model.TINY.vocab
    text = b"the model runs on the edge device, quickly!\n"
    tokens = llm.tokenize(text)
    assert tokens[0] == gguf_model.BOS_ID and len(tokens) > 2
    assert llm.detokenize(tokens) == text
    generated = []
    for tok in llm.generate(tokens, top_k=1, temp=0.0):
        generated.append(tok)
        if len(generated) == 16:
            break
    assert len(generated) == 16 and all(0 <= t < gguf_model.TINY.vocab for t in generated)


def test_gguf_vocabulary_has_no_duplicates() -> None:
    for spec in (gguf_model.TINY, gguf_model.DEFAULT):
        tokens, scores, types = gguf_model.vocabulary(spec)
        assert len(tokens) == len(set(tokens)) == len(scores) == len(types) == spec.vocab
        assert tokens[3:259] == [f"<0x{i:02X}>" for i in range(256)]


def test_duplicated_vocab_gguf_makes_llama_cpp_abort(tmp_path: Path) -> None:
    path = write_broken_gguf(tmp_path / "dup.gguf")
    tokens, _, _ = gguf_model.vocabulary(dataclasses.replace(gguf_model.TINY, dup_token=True))
    assert len(set(tokens)) == len(tokens) - 1
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, llama_cpp; llama_cpp.Llama(model_path=sys.argv[1], verbose=False)",
         str(path)],
        capture_output=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stderr[-2000:])


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = write_samples(tmp_path / "a", "tiny", seed=7)
    b = write_samples(tmp_path / "b", "tiny", seed=7)
    c = write_samples(tmp_path / "c", "tiny", seed=8)
    for pa, pb, pc in zip(a, b, c):
        assert _sha256(pa) == _sha256(pb), pa.name
        assert _sha256(pa) != _sha256(pc), pa.name


def test_write_truncated_keeps_a_prefix(tiny: dict[str, Path], tmp_path: Path) -> None:
    src = tiny[GGUF_NAME]
    dst = write_truncated(src, tmp_path / "cut.gguf")
    data = src.read_bytes()
    assert dst.read_bytes() == data[: len(data) // 2]
    with pytest.raises(ValueError):
        write_truncated(src, tmp_path / "x", keep=1.0)


def test_failed_write_leaves_neither_file_nor_temp(tmp_path: Path) -> None:
    dst = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_target(dst) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_default_samples_have_meaningful_sizes(tmp_path: Path) -> None:
    start = time.perf_counter()
    onnx_path, tflite_path, gguf_path = write_samples(tmp_path, "default")
    assert time.perf_counter() - start < 60
    assert 2e6 < onnx_path.stat().st_size < 25e6
    assert 1e6 < tflite_path.stat().st_size < 5e6
    assert 100e6 < gguf_path.stat().st_size < 115e6
