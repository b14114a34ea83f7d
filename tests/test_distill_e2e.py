"""Tiny end-to-end distillations (seconds): an embedding student exported to ONNX fp32/int8 and loaded in
onnxruntime; a llama student distilled from an in-process teacher, exported to GGUF f16/q8_0 and loaded
in llama.cpp (in a child process); the sweep's Pareto front; the CLI's error path."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from distill import losses  # noqa: E402
from distill.embed_student import EmbedBatch, StudentSpec, build_student, embedding_objective, pad  # noqa: E402
from distill.models.bert import BertConfig, BertEncoder  # noqa: E402
from distill.models.chartok import CharVocab  # noqa: E402
from distill.models.llama import Llama, LlamaConfig  # noqa: E402
from distill.trainer import TrainConfig, Trainer, seed_everything  # noqa: E402

TEXT = ("Return the value of the named attribute of object. Open the file and return a stream. "
        "Raise an exception when the timeout expires. Sort the list in place. ") * 20


def test_embedding_student_distils_and_exports_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from distill.embed_student import TeacherSentence
    from distill.export import onnx as ox

    seed_everything(0)
    tcfg = BertConfig(vocab_size=60, hidden=64, head_dim=16, heads=[4] * 3, intermediate=[128] * 3,
                      max_positions=32, type_vocab=2)
    teacher = TeacherSentence(BertEncoder(tcfg).eval())
    student = build_student(teacher.encoder, StudentSpec(layers=(0, 2), hidden=64, embed_dim=16, heads=2,
                                                         intermediate=64, max_positions=32))
    from distill import prune

    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(4):
        ids = torch.randint(1, 60, (8, 10), generator=g)
        mask = torch.ones_like(ids)
        with torch.no_grad():
            batches.append(EmbedBatch(ids, mask, teacher(ids, mask)))
    obj = embedding_objective(student, losses.EmbeddingLossWeights())
    prune.prune_to(student.encoder, prune.saliency(student.encoder, lambda b: obj(b)["loss"], batches[:2]), 2, 64)
    before = float(obj(batches[0])["loss"].detach())
    Trainer(student, obj, TrainConfig(epochs=3, lr=1e-3, progress=False)).fit(batches)
    assert float(obj(batches[0])["loss"].detach()) < before

    ids, mask = pad([([1, 5, 7, 9, 2], [1] * 5), ([1, 3, 2], [1] * 3)])
    names = ["input_ids", "attention_mask"]
    axes = {"input_ids": {0: "b", 1: "n"}, "attention_mask": {0: "b", 1: "n"}}
    fp32 = ox.export_onnx(student, (ids, mask), tmp_path / "s.onnx", names, ["embedding"], axes)
    assert ox.verify(fp32, student, (ids, mask), names) < ox.FP32_ATOL
    int8 = ox.quantize_int8(fp32, tmp_path / "s8.onnx")
    assert int8.stat().st_size < fp32.stat().st_size
    q = ox.run(ox.session(int8), {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    with torch.no_grad():
        ref = student(ids, mask).numpy()
    assert float((q * ref).sum(axis=1).min()) > 0.98  # int8 keeps the direction of unit embeddings


def test_llama_student_distils_and_exports_gguf_llama_cpp_loads(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    pytest.importorskip("llama_cpp")
    from distill.augment import teacher_augment
    from distill.export.gguf import export_gguf, verify_gguf

    seed_everything(0)
    vocab = CharVocab.from_text(TEXT)
    stream = vocab.encode(TEXT)
    teacher = Llama(LlamaConfig(vocab_size=vocab.size, dim=64, layers=2, heads=2, ffn=128, max_seq=64))
    student = Llama(LlamaConfig(vocab_size=vocab.size, dim=32, layers=1, heads=2, ffn=64, max_seq=64))
    batches = [torch.tensor([stream[i:i + 33] for i in range(j, j + 64, 16)]) for j in range(0, 320, 64)]

    def ce(m: Llama):  # type: ignore[no-untyped-def]
        return lambda b, s: {"loss": torch.nn.functional.cross_entropy(
            m(b[:, :-1]).logits.reshape(-1, vocab.size), b[:, 1:].reshape(-1))}

    Trainer(teacher, ce(teacher), TrainConfig(epochs=3, lr=3e-3, progress=False)).fit(batches)
    aug = teacher_augment(teacher, vocab, ["Return the value", "Open the file"], per_prompt=2, prompt_tokens=8,
                          new_tokens=8)
    assert len(aug) == 4 and all(len(a) == 16 for a in aug)
    mimic = losses.HiddenMimicry(32, 64, [(1, 2)])

    def kd(b: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            t = teacher(b[:, :-1])
        s = student(b[:, :-1])
        return {"loss": losses.kd_loss(s.logits, t.logits, b[:, 1:]) + mimic(s.hidden, t.hidden)
                + 0.2 * losses.attention_transfer(s.attentions[-1], t.attentions[-1])}

    Trainer(torch.nn.ModuleList([student, mimic]), kd, TrainConfig(epochs=2, lr=3e-3, progress=False)).fit(batches)
    student.eval()
    for kind in ("f16", "q8_0"):
        path = export_gguf(student, vocab, tmp_path / f"s-{kind}.gguf", kind)
        check = verify_gguf(path, student, vocab, "Open the file and return", kind)
        assert check["max_abs_logit_diff"] <= {"f16": 0.05, "q8_0": 0.25}[kind]


def test_gguf_export_rejects_widths_q8_0_cannot_hold(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    from distill.errors import DistillError
    from distill.export.gguf import export_gguf

    vocab = CharVocab.from_text(TEXT)
    m = Llama(LlamaConfig(vocab_size=vocab.size, dim=48, layers=1, heads=2, ffn=64))
    with pytest.raises(DistillError, match="multiple of 32"):
        export_gguf(m, vocab, tmp_path / "x.gguf", "q8_0")


def test_tflite_export_says_why_it_is_unavailable(tmp_path: Path) -> None:
    from distill.errors import DistillError
    from distill.export.tflite import converter_available, export_tflite

    if converter_available():
        pytest.skip("a TFLite converter is installed here")
    with pytest.raises(DistillError, match="litert-torch"):
        export_tflite(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), tmp_path / "m.tflite")


def test_pareto_front() -> None:
    from distill.sweep import pareto

    pts = [{"name": "a", "m": 10, "q": 0.90}, {"name": "b", "m": 20, "q": 0.95}, {"name": "c", "m": 25, "q": 0.93},
           {"name": "d", "m": 5, "q": 0.80}, {"name": "e", "m": None, "q": 0.99}]
    assert pareto(pts, "m", "q") == ["a", "b", "d"]


def test_cli_reports_user_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from distill.__main__ import main

    with pytest.raises(SystemExit):
        main(["no-such-command"])
    assert "invalid choice" in capsys.readouterr().err
    assert np.isfinite(1.0)
