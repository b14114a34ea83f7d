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
from distill.export import onnx as onnx_export
from distill.models.bert import count_parameters, load_hf_bert, minilm_dir
from distill.quant import QuantConfig, prepare_qat, strip_qat
from distill.trainer import TrainConfig, Trainer, seed_everything

HERE = Path(__file__).parent
NAMES = ("input_ids", "attention_mask")
AXES = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
        "embedding": {0: "batch"}}


@dataclass
class EmbedExampleConfig:
    out: Path = Path("runs/embed")
    spec: StudentSpec = field(default_factory=StudentSpec)
    max_train: int = 6000
    perturbed_frac: float = 0.15
    max_len: int = 48
    batch_size: int = 64
    prune_steps: tuple[tuple[int, int], ...] = ((9, 1152),)
    epochs: int = 3
    qat_epochs: int = 1
    lr: float = 3e-4
    qat_lr: float = 5e-5
    eval_pairs_per_kind: int = 600
    seed: int = 0
    threads: int = 2
    export_teacher: bool = True
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
    rand = []
    while len(rand) < per_kind and n > 1:
        i, j = rng.randrange(n), rng.randrange(n)
        if doc_of[i] != doc_of[j]:
            rand.append((i, j, "unrelated"))
    pert = []
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


def run(cfg: EmbedExampleConfig) -> dict[str, Any]:
    """Run the whole example; writes artifacts, metrics.jsonl and summary.json under cfg.out."""
    t_start = time.monotonic()
    load_start = os.getloadavg()
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    log = cfg.out / "metrics.jsonl"
    log.unlink(missing_ok=True)
    phases: dict[str, float] = {}

    def phase(name: str, t0: float) -> None:
        phases[name] = round(time.monotonic() - t0, 1)
        print(f"[embed] {name}: {phases[name]} s (load {os.getloadavg()[0]:.1f})", flush=True)

    t = time.monotonic()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    teacher_enc = load_hf_bert(minilm_dir()).eval()
    teacher = TeacherSentence(teacher_enc)
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
    phase("load", t)

    t = time.monotonic()
    train_targets = torch.from_numpy(embed(teacher, train_rows))
    teacher_eval = embed(teacher, eval_rows)
    teacher_para = {k: embed(teacher, v) for k, v in para_tok.items()}
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    teacher_cos = metrics.pair_cosines(teacher_eval[a], teacher_eval[b])
    phase("teacher_embeddings", t)

    batches = []
    for idx in length_batches(train_rows, cfg.batch_size):
        ids, mask = pad([train_rows[i] for i in idx])
        batches.append(EmbedBatch(ids, mask, train_targets[idx]))

    def quality(model: torch.nn.Module) -> dict[str, float]:
        return _quality(embed(model, eval_rows), teacher_cos, pairs,
                        {k: embed(model, v) for k, v in para_tok.items()})

    report: dict[str, Any] = {"config": _jsonable(asdict(cfg)), "corpus": {
        "train_texts": len(train_texts), "eval_texts": len(eval_texts), "eval_pairs": len(pairs),
        "train_modules": len(train_docs), "heldout_modules": len(held_docs)}}
    report["teacher"] = {"parameters": count_parameters(teacher_enc),
                         **_quality_from(teacher_eval, teacher_cos, pairs, teacher_para)}

    t = time.monotonic()
    student = build_student(teacher_enc, cfg.spec, cfg.seed)
    report["student_init"] = {"parameters": count_parameters(student), **quality(student)}
    weights = losses.EmbeddingLossWeights(cosine=1.0, mse=0.0, similarity=1.0)

    def train(model: EmbeddingStudent, epochs: int, lr: float, tag: str) -> dict[str, Any]:
        tc = TrainConfig(epochs=epochs, lr=lr, seed=cfg.seed, metrics_path=log, tag=tag,
                         checkpoint_dir=cfg.out / "checkpoints", freeze_embeddings_epochs=0, precision="auto")
        res = Trainer(model, embedding_objective(model, weights), tc,
                      embedding_params=[model.encoder.word.weight]).fit(batches)
        return {"steps": res.steps, "seconds": round(res.seconds, 1), "last_loss": res.last_loss,
                "precision": res.precision}

    objective = embedding_objective(student, weights)
    pruned: list[dict[str, Any]] = []
    if cfg.spec.hidden == teacher_enc.cfg.hidden:
        targets = [*cfg.prune_steps, (cfg.spec.heads, cfg.spec.intermediate)]
        score_batches = batches[:: max(1, len(batches) // 8)][:8]
        for k, (h, c) in enumerate(targets):
            sal = prune.saliency(student.encoder, lambda bt: objective(bt)["loss"], score_batches)
            prune.prune_to(student.encoder, sal, h, c)
            info = train(student, 1 if k < len(targets) - 1 else cfg.epochs, cfg.lr, f"prune{k}")
            pruned.append({"heads": h, "channels": c, "parameters": count_parameters(student), **info})
    else:
        pruned.append({"parameters": count_parameters(student), **train(student, cfg.epochs, cfg.lr, "distill")})
    report["prune_and_distill"] = pruned
    phase("distill", t)

    t = time.monotonic()
    student.eval()
    report["student_fp32_torch"] = {"parameters": count_parameters(student), **quality(student)}
    art = cfg.out / "artifacts"
    ex_ids, ex_mask = pad(eval_rows[:8])
    fp32 = onnx_export.export_onnx(student, (ex_ids, ex_mask), art / "student-fp32.onnx", NAMES, ["embedding"], AXES)
    diff = onnx_export.verify(fp32, student, (ex_ids, ex_mask), NAMES)
    ptq = onnx_export.quantize_int8(fp32, art / "student-int8-ptq.onnx")
    report["student_fp32_onnx"] = _artifact(fp32, eval_rows, teacher_cos, pairs, para_tok, max_abs_diff_vs_torch=diff)
    report["student_int8_ptq"] = _artifact(ptq, eval_rows, teacher_cos, pairs, para_tok)
    phase("export_fp32_ptq", t)

    t = time.monotonic()
    qat_model = prepare_qat(copy.deepcopy(student), QuantConfig(weight_bits=8, act_bits=8))
    assert isinstance(qat_model, EmbeddingStudent)
    report["qat_training"] = train(qat_model, cfg.qat_epochs, cfg.qat_lr, "qat")
    report["student_qat_fakequant_torch"] = quality(qat_model)
    strip_qat(qat_model)
    qat_fp32 = onnx_export.export_onnx(qat_model, (ex_ids, ex_mask), art / "student-qat-fp32.onnx", NAMES,
                                       ["embedding"], AXES)
    qat = onnx_export.quantize_int8(qat_fp32, art / "student-int8-qat.onnx")
    qat_fp32.unlink()
    report["student_int8_qat"] = _artifact(qat, eval_rows, teacher_cos, pairs, para_tok)
    phase("qat_export", t)

    if cfg.export_teacher:
        t = time.monotonic()
        tpath = onnx_export.export_onnx(teacher, (ex_ids, ex_mask), art / "teacher-fp32.onnx", NAMES,
                                        ["embedding"], AXES)
        report["teacher_fp32_onnx"] = {"path": str(tpath), "bytes": tpath.stat().st_size,
                                       "max_abs_diff_vs_torch": onnx_export.verify(tpath, teacher, (ex_ids, ex_mask), NAMES)}
        phase("export_teacher", t)

    report["summary"] = _summary(report)
    report["run"] = {"seconds": round(time.monotonic() - t_start, 1), "phases": phases,
                     "threads": cfg.threads, "cpus": os.cpu_count(), "loadavg_start": load_start,
                     "loadavg_end": os.getloadavg()}
    (cfg.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _quality_from(emb: np.ndarray, teacher_cos: np.ndarray, pairs: list[tuple[int, int, str]],
                  para: dict[str, np.ndarray]) -> dict[str, float]:
    return _quality(emb, teacher_cos, pairs, para)


def _artifact(path: Path, rows: list[tuple[list[int], list[int]]], teacher_cos: np.ndarray,
              pairs: list[tuple[int, int, str]], para_tok: dict[str, list[tuple[list[int], list[int]]]],
              **extra: float) -> dict[str, Any]:
    q = _quality(_onnx_embed(path, rows), teacher_cos, pairs, {k: _onnx_embed(path, v) for k, v in para_tok.items()})
    return {"path": str(path), "bytes": path.stat().st_size, **q, **extra}


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    tp = r["teacher"]["parameters"]
    sp = r["student_fp32_torch"]["parameters"]
    s = {"teacher_parameters": tp, "student_parameters": sp, "parameter_ratio": sp / tp,
         "spearman_fp32": r["student_fp32_onnx"]["spearman_vs_teacher"],
         "spearman_int8_ptq": r["student_int8_ptq"]["spearman_vs_teacher"],
         "spearman_int8_qat": r["student_int8_qat"]["spearman_vs_teacher"],
         "paraphrase_accuracy_teacher": r["teacher"]["paraphrase_accuracy"],
         "paraphrase_accuracy_fp32": r["student_fp32_onnx"]["paraphrase_accuracy"]}
    if "teacher_fp32_onnx" in r:
        s["onnx_bytes_ratio"] = r["student_fp32_onnx"]["bytes"] / r["teacher_fp32_onnx"]["bytes"]
    s["quality_kept"] = s["spearman_fp32"]  # the teacher's Spearman against itself is 1.0
    s["int8_loss_ptq"] = s["spearman_fp32"] - s["spearman_int8_ptq"]
    s["int8_loss_qat"] = s["spearman_fp32"] - s["spearman_int8_qat"]
    return s


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return str(x) if isinstance(x, Path) else x
