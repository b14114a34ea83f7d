"""Sentence-embedding example: distil all-MiniLM-L6-v2 into a student at most a quarter of its size.

Data: docstring sentences of the Python standard library (distill.corpus), split by module; held-out
pairs are (sentence, next sentence), (sentence, unrelated sentence) and (sentence, word-dropped copy).
Quality: Spearman correlation between the student's and the teacher's cosine similarities on those
pairs (the teacher scores 1.0 by definition), plus the paraphrase triples in paraphrases.jsonl.
Pipeline: build (teacher layers + PCA vocabulary) -> iterative saliency pruning with distillation
fine-tuning -> distillation -> fp32 ONNX -> int8 two ways: post-training (PTQ) and after
quantization-aware distillation (QAT), both printed.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill import corpus, losses, metrics, prune
from distill.embed_student import (EmbedBatch, EmbeddingStudent, StudentSpec, TeacherSentence, build_student,
                                   embed, embedding_objective, length_batches, pad, tokenize)
from distill.errors import DistillError
from distill.export import onnx as onnx_export
from distill.models.bert import count_parameters, load_hf_bert, minilm_dir
from distill.quant import QuantConfig, prepare_qat, strip_qat
from distill.trainer import TrainConfig, Trainer, seed_everything

HERE = Path(__file__).parent
NAMES = ("input_ids", "attention_mask")
INT4_BLOCK = 32
AXES = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
        "embedding": {0: "batch"}}


@dataclass
class EmbedExampleConfig:
    out: Path = Path("runs/embed")
    spec: StudentSpec = field(default_factory=StudentSpec)
    max_train: int = 5000
    perturbed_frac: float = 0.15
    max_len: int = 48
    batch_size: int = 64
    prune_steps: tuple[tuple[int, int], ...] = ((9, 1152),)
    prune_finetune_steps: int = 30  # distillation steps after each intermediate pruning step
    epochs: int = 2
    qat_epochs: int = 1
    lr: float = 5e-4
    qat_lr: float = 5e-5
    similarity_weight: float = 5.0
    ptq_control: bool = True  # also fine-tune in fp32 for the QAT's steps, then PTQ: QAT's gain net of extra training
    eval_pairs_per_kind: int = 600
    seed: int = 0
    threads: int = 2
    max_files: int | None = None  # of the stdlib, for quick tests


def _perturb(text: str, rng: random.Random) -> str:
    words = text.split()
    kept = [w for w in words if rng.random() > 0.25] or words[:1]
    if len(kept) > 3 and rng.random() < 0.5:
        i = rng.randrange(len(kept) - 1)
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return " ".join(kept)


def _eval_set(held: list[corpus.Document], per_kind: int, rng: random.Random) -> tuple[list[str], list[tuple[int, int, str]]]:
    texts: list[str] = []
    doc_of: list[int] = []
    for di, d in enumerate(held):
        texts += list(d.sentences)
        doc_of += [di] * len(d.sentences)
    n = len(texts)
    adjacent = [(i, i + 1, "adjacent") for i in range(n - 1) if doc_of[i] == doc_of[i + 1]]
    rand: list[tuple[int, int, str]] = []
    for _ in range(per_kind * 20 if len(held) > 1 else 0):  # bounded: few documents may rarely differ
        if len(rand) >= per_kind:
            break
        i, j = rng.randrange(n), rng.randrange(n)
        if doc_of[i] != doc_of[j]:
            rand.append((i, j, "unrelated"))
    pert: list[tuple[int, int, str]] = []
    for i in rng.sample(range(n), min(per_kind, n)):
        texts.append(_perturb(texts[i], rng))
        pert.append((i, len(texts) - 1, "perturbed"))
    pairs = rng.sample(adjacent, min(per_kind, len(adjacent))) + rand + pert
    return texts, pairs


def _quality(emb: np.ndarray, teacher_cos: np.ndarray, pairs: list[tuple[int, int, str]],
             para: dict[str, np.ndarray]) -> dict[str, float]:
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    cos = metrics.pair_cosines(emb[a], emb[b])
    out = {"spearman_vs_teacher": metrics.spearman(cos, teacher_cos)}
    acc, margin = metrics.paraphrase_accuracy(para["anchor"], para["paraphrase"], para["distractor"])
    out.update({"paraphrase_accuracy": acc, "paraphrase_margin": margin})
    return out


def _onnx_embed(path: Path, rows: list[tuple[list[int], list[int]]]) -> np.ndarray:
    sess = onnx_export.session(path)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out: np.ndarray | None = None
    for i in range(0, len(order), 64):
        idx = order[i:i + 64]
        ids, mask = pad([rows[j] for j in idx])
        e = onnx_export.run(sess, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        if out is None:
            out = np.zeros((len(rows), e.shape[1]), dtype=np.float32)
        out[idx] = e
    assert out is not None
    return out


@dataclass
class EmbedData:
    """Everything the students of one teacher share: tokenised texts, teacher targets, held-out pairs."""

    teacher: TeacherSentence
    train_rows: list[tuple[list[int], list[int]]]
    eval_rows: list[tuple[list[int], list[int]]]
    pairs: list[tuple[int, int, str]]
    teacher_cos: np.ndarray
    para_tok: dict[str, list[tuple[list[int], list[int]]]]
    batches: list[EmbedBatch]
    report: dict[str, Any]


def prepare(cfg: EmbedExampleConfig, phases: dict[str, float]) -> EmbedData:
    """Load the teacher and corpus, tokenise, and embed the training and held-out texts with the teacher."""
    from tokenizers import Tokenizer

    rng = random.Random(cfg.seed)
    t = time.monotonic()
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    teacher = TeacherSentence(load_hf_bert(minilm_dir()).eval())
    docs = corpus.stdlib_documents(max_files=cfg.max_files)
    train_docs, held_docs = corpus.split_documents(docs)
    train_texts: list[str] = []
    for d in train_docs:
        for s in d.sentences:
            train_texts.append(s)
            if rng.random() < cfg.perturbed_frac:
                train_texts.append(_perturb(s, rng))
    train_texts = train_texts[: cfg.max_train]
    eval_texts, pairs = _eval_set(held_docs, cfg.eval_pairs_per_kind, rng)
    para_rows = [json.loads(line) for line in (HERE / "paraphrases.jsonl").read_text().splitlines() if line]
    para_texts = {k: [r[k] for r in para_rows] for k in ("anchor", "paraphrase", "distractor")}
    train_rows = tokenize(tok, train_texts, cfg.max_len)
    eval_rows = tokenize(tok, eval_texts, cfg.max_len)
    para_tok = {k: tokenize(tok, v, cfg.max_len) for k, v in para_texts.items()}
    _phase(phases, "load", t)

    t = time.monotonic()
    # The teacher's targets come from its fp32 ONNX export in onnxruntime (checked against torch to 1e-4):
    # 2.5x faster than torch eager here, and the same file is the teacher artifact the sizes compare to.
    ex_ids, ex_mask = pad(eval_rows[:8])
    tpath = onnx_export.export_onnx(teacher, (ex_ids, ex_mask), cfg.out / "artifacts" / "teacher-fp32.onnx",
                                    NAMES, ["embedding"], AXES)
    tdiff = onnx_export.verify(tpath, teacher, (ex_ids, ex_mask), NAMES)
    train_targets = torch.from_numpy(_onnx_embed(tpath, train_rows))
    teacher_eval = _onnx_embed(tpath, eval_rows)
    teacher_para = {k: _onnx_embed(tpath, v) for k, v in para_tok.items()}
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    teacher_cos = metrics.pair_cosines(teacher_eval[a], teacher_eval[b])
    _phase(phases, "teacher_embeddings", t)

    batches = []
    for idx in length_batches(train_rows, cfg.batch_size):
        ids, mask = pad([train_rows[i] for i in idx])
        batches.append(EmbedBatch(ids, mask, train_targets[idx]))
    report: dict[str, Any] = {"corpus": {
        "train_texts": len(train_texts), "eval_texts": len(eval_texts), "eval_pairs": len(pairs),
        "train_modules": len(train_docs), "heldout_modules": len(held_docs), "max_len": cfg.max_len}}
    report["teacher"] = {"parameters": count_parameters(teacher),
                         **_quality(teacher_eval, teacher_cos, pairs, teacher_para)}
    report["teacher_fp32_onnx"] = {"path": str(tpath), "bytes": tpath.stat().st_size, "max_abs_diff_vs_torch": tdiff}
    return EmbedData(teacher, train_rows, eval_rows, pairs, teacher_cos, para_tok, batches, report)


def _phase(phases: dict[str, float], name: str, t0: float) -> None:
    phases[name] = round(time.monotonic() - t0, 1)
    print(f"[embed] {name}: {phases[name]} s (load {os.getloadavg()[0]:.1f})", flush=True)


def distill_student(data: EmbedData, cfg: EmbedExampleConfig, spec: StudentSpec, out: Path,
                    phases: dict[str, float], int4: bool = False) -> dict[str, Any]:
    """Build, prune, distil and export one student; returns its report (artifacts with sizes and quality)."""
    log = out / "metrics.jsonl"
    teacher_enc = data.teacher.encoder
    pairs, teacher_cos, para_tok, eval_rows = data.pairs, data.teacher_cos, data.para_tok, data.eval_rows

    def quality(model: torch.nn.Module) -> dict[str, float]:
        return _quality(embed(model, eval_rows), teacher_cos, pairs, {k: embed(model, v) for k, v in para_tok.items()})

    t = time.monotonic()
    report: dict[str, Any] = {"spec": asdict(spec), "name": spec.name}
    student = build_student(teacher_enc, spec, cfg.seed)
    report["student_init"] = {"parameters": count_parameters(student), **quality(student)}
    weights = losses.EmbeddingLossWeights(cosine=1.0, mse=0.0, similarity=cfg.similarity_weight)

    def train(model: EmbeddingStudent, epochs: int, lr: float, tag: str, steps: int | None = None) -> dict[str, Any]:
        tc = TrainConfig(epochs=epochs, lr=lr, seed=cfg.seed, metrics_path=log, tag=f"{spec.name}/{tag}",
                         checkpoint_dir=out / "checkpoints", precision="auto", max_steps=steps)
        res = Trainer(model, embedding_objective(model, weights), tc,
                      embedding_params=[model.encoder.word.weight]).fit(data.batches)
        return {"steps": res.steps, "seconds": round(res.seconds, 1), "last_loss": res.last_loss,
                "precision": res.precision}

    objective = embedding_objective(student, weights)
    stages: list[dict[str, Any]] = []
    if spec.hidden == teacher_enc.cfg.hidden:
        targets = [*(s for s in cfg.prune_steps if s[0] > spec.heads), (spec.heads, spec.intermediate)]
        score_batches = data.batches[:: max(1, len(data.batches) // 8)][:8]
        for k, (h, c) in enumerate(targets):
            sal = prune.saliency(student.encoder, lambda bt: objective(bt)["loss"], score_batches)
            prune.prune_to(student.encoder, sal, h, c)
            last = k == len(targets) - 1
            info = train(student, cfg.epochs if last else 1, cfg.lr, f"prune{k}",
                         None if last else cfg.prune_finetune_steps)
            stages.append({"heads": h, "channels": c, "parameters": count_parameters(student), **info})
    else:
        stages.append({"parameters": count_parameters(student), **train(student, cfg.epochs, cfg.lr, "distill")})
    report["prune_and_distill"] = stages
    _phase(phases, f"{spec.name}/distill", t)

    t = time.monotonic()
    student.eval()
    report["student_fp32_torch"] = {"parameters": count_parameters(student), **quality(student)}
    art = out / "artifacts"
    ex_ids, ex_mask = pad(eval_rows[:8])
    stem = f"student-{spec.name}"
    fp32 = onnx_export.export_onnx(student, (ex_ids, ex_mask), art / f"{stem}-fp32.onnx", NAMES, ["embedding"], AXES)
    diff = onnx_export.verify(fp32, student, (ex_ids, ex_mask), NAMES)
    ptq = onnx_export.quantize_int8(fp32, art / f"{stem}-int8-ptq.onnx")
    report["fp32"] = _artifact(fp32, eval_rows, teacher_cos, pairs, para_tok, max_abs_diff_vs_torch=diff)
    report["int8_ptq"] = _artifact(ptq, eval_rows, teacher_cos, pairs, para_tok)
    _phase(phases, f"{spec.name}/export_fp32_ptq", t)

    t = time.monotonic()
    qat_model = prepare_qat(copy.deepcopy(student), QuantConfig(weight_bits=8, act_bits=8))
    assert isinstance(qat_model, EmbeddingStudent)
    report["qat_training"] = train(qat_model, cfg.qat_epochs, cfg.qat_lr, "qat")
    report["qat_fakequant_torch"] = quality(qat_model)
    strip_qat(qat_model)
    qat_fp32 = onnx_export.export_onnx(qat_model, (ex_ids, ex_mask), art / f"{stem}-qat-fp32.onnx", NAMES,
                                       ["embedding"], AXES)
    qat = onnx_export.quantize_int8(qat_fp32, art / f"{stem}-int8-qat.onnx")
    qat_fp32.unlink()
    report["int8_qat"] = _artifact(qat, eval_rows, teacher_cos, pairs, para_tok)
    _phase(phases, f"{spec.name}/qat_export", t)
    if cfg.ptq_control:
        t = time.monotonic()
        ctl = copy.deepcopy(student)
        report["control_training"] = train(ctl, cfg.qat_epochs, cfg.qat_lr, "control")
        ctl_fp32 = onnx_export.export_onnx(ctl, (ex_ids, ex_mask), art / f"{stem}-control-fp32.onnx", NAMES,
                                           ["embedding"], AXES)
        report["fp32_control"] = _artifact(ctl_fp32, eval_rows, teacher_cos, pairs, para_tok)
        ctl_int8 = onnx_export.quantize_int8(ctl_fp32, art / f"{stem}-int8-ptq-control.onnx")
        report["int8_ptq_control"] = _artifact(ctl_int8, eval_rows, teacher_cos, pairs, para_tok)
        ctl_fp32.unlink()
        _phase(phases, f"{spec.name}/ptq_control", t)
    if int4:
        t = time.monotonic()
        try:
            q4 = onnx_export.quantize_int4(fp32, art / f"{stem}-int4-ptq.onnx", block_size=INT4_BLOCK)
            report["int4_ptq"] = _artifact(q4, eval_rows, teacher_cos, pairs, para_tok)
            q4_model = prepare_qat(copy.deepcopy(student), QuantConfig(weight_bits=4, act_bits=None,
                                                                      block_size=INT4_BLOCK, quantize_embeddings=False))
            assert isinstance(q4_model, EmbeddingStudent)
            report["int4_qat_training"] = train(q4_model, cfg.qat_epochs, cfg.qat_lr, "qat4")
            strip_qat(q4_model)
            q4_fp32 = onnx_export.export_onnx(q4_model, (ex_ids, ex_mask), art / f"{stem}-qat4-fp32.onnx", NAMES,
                                              ["embedding"], AXES)
            q4q = onnx_export.quantize_int4(q4_fp32, art / f"{stem}-int4-qat.onnx", block_size=INT4_BLOCK)
            q4_fp32.unlink()
            report["int4_qat"] = _artifact(q4q, eval_rows, teacher_cos, pairs, para_tok)
        except DistillError as exc:
            report["int4_skipped"] = str(exc)
        _phase(phases, f"{spec.name}/int4", t)
    return report


def run(cfg: EmbedExampleConfig) -> dict[str, Any]:
    """Run the whole example; writes artifacts, metrics.jsonl and summary.json under cfg.out."""
    t_start = time.monotonic()
    load_start = os.getloadavg()
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "metrics.jsonl").unlink(missing_ok=True)
    phases: dict[str, float] = {}
    data = prepare(cfg, phases)
    report: dict[str, Any] = {"config": _jsonable(asdict(cfg)), **data.report}
    report["student"] = distill_student(data, cfg, cfg.spec, cfg.out, phases)
    report["summary"] = _summary(report)
    report["run"] = {"seconds": round(time.monotonic() - t_start, 1), "phases": phases,
                     "threads": cfg.threads, "cpus": os.cpu_count(), "loadavg_start": load_start,
                     "loadavg_end": os.getloadavg()}
    (cfg.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _artifact(path: Path, rows: list[tuple[list[int], list[int]]], teacher_cos: np.ndarray,
              pairs: list[tuple[int, int, str]], para_tok: dict[str, list[tuple[list[int], list[int]]]],
              **extra: float) -> dict[str, Any]:
    q = _quality(_onnx_embed(path, rows), teacher_cos, pairs, {k: _onnx_embed(path, v) for k, v in para_tok.items()})
    return {"path": str(path), "bytes": path.stat().st_size, **q, **extra}


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    st = r["student"]
    tp = r["teacher"]["parameters"]
    sp = st["student_fp32_torch"]["parameters"]
    s = {"teacher_parameters": tp, "student_parameters": sp, "parameter_ratio": sp / tp,
         "spearman_fp32": st["fp32"]["spearman_vs_teacher"],
         "spearman_int8_ptq": st["int8_ptq"]["spearman_vs_teacher"],
         "spearman_int8_qat": st["int8_qat"]["spearman_vs_teacher"],
         "paraphrase_accuracy_teacher": r["teacher"]["paraphrase_accuracy"],
         "paraphrase_accuracy_fp32": st["fp32"]["paraphrase_accuracy"],
         "paraphrase_accuracy_int8_qat": st["int8_qat"]["paraphrase_accuracy"]}
    if "teacher_fp32_onnx" in r:
        s["onnx_bytes_ratio"] = st["fp32"]["bytes"] / r["teacher_fp32_onnx"]["bytes"]
    s["quality_kept"] = s["spearman_fp32"]  # the teacher's Spearman against itself is 1.0
    s["int8_loss_ptq"] = s["spearman_fp32"] - s["spearman_int8_ptq"]
    s["int8_loss_qat"] = s["spearman_fp32"] - s["spearman_int8_qat"]
    if "int8_ptq_control" in st:
        s["spearman_fp32_control"] = st["fp32_control"]["spearman_vs_teacher"]
        s["spearman_int8_ptq_control"] = st["int8_ptq_control"]["spearman_vs_teacher"]
        s["int8_loss_ptq_control"] = s["spearman_fp32_control"] - s["spearman_int8_ptq_control"]
    s["checks"] = {"size_at_most_25pct": s["parameter_ratio"] <= 0.25,
                   "quality_at_least_95pct": s["quality_kept"] >= 0.95,
                   "qat_beats_ptq": s["int8_loss_qat"] < s["int8_loss_ptq"]
                   and s["spearman_int8_qat"] > s.get("spearman_int8_ptq_control", -1.0)}
    return s


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return str(x) if isinstance(x, Path) else x
