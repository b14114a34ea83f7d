"""A small, deterministic training loop shared by every distillation in this package.

What it does and why:
- gradient accumulation (`grad_accum` micro-batches per optimiser step) so large effective batches fit;
- precision: "fp32", "bf16" (torch.autocast on CPU) or "auto", which picks bf16 only on CPUs with AMX
  tiles. On AVX512-BF16 without AMX (this machine) bf16 autocast measured slower than fp32 for these small
  matrices, so "auto" stays fp32 there;
- optional frozen embeddings for the first `freeze_embeddings_epochs` epochs (a fresh projection settles
  before the vocabulary table moves);
- seeds torch/random/numpy from `seed`, shuffles each epoch with a seeded generator;
- a checkpoint (model + optimiser + position) at the end of every epoch, and resume from it;
- a progress line on stderr and a JSONL metrics log.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

Precision = Literal["auto", "fp32", "bf16"]
LossFn = Callable[[Any, int], dict[str, Tensor]]  # (batch, optimiser step) -> {"loss": ..., other terms}


@dataclass
class TrainConfig:
    epochs: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    precision: Precision = "auto"
    freeze_embeddings_epochs: int = 0
    seed: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False
    metrics_path: Path | None = None
    log_every: int = 10
    progress: bool = True
    max_seconds: float | None = None  # stop early (between steps) once this much time has passed
    max_steps: int | None = None  # stop after this many optimiser steps (a fraction of an epoch)
    tag: str = "train"


@dataclass
class TrainResult:
    steps: int
    epochs_done: float
    seconds: float
    last_loss: float
    precision: str
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed python, numpy (if present) and torch; turn on torch's deterministic algorithms where it can."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_precision(precision: Precision) -> str:
    """'bf16' or 'fp32' for this CPU (see the module docstring for the rule)."""
    if precision != "auto":
        return precision
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if "amx_bf16" in flags else "fp32"


class Trainer:
    """Runs `loss_fn` over batches with AdamW, linear warm-up then cosine decay."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, cfg: TrainConfig,
                 embedding_params: Sequence[torch.Tensor] = ()) -> None:
        self.model, self.loss_fn, self.cfg = model, loss_fn, cfg
        self.embedding_params = list(embedding_params)
        self.precision = resolve_precision(cfg.precision)
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.step = 0
        self.start_epoch = 0

    def _lr(self, step: int, total: int) -> float:
        warm = max(1, int(total * self.cfg.warmup_frac))
        if step < warm:
            return self.cfg.lr * (step + 1) / warm
        frac = (step - warm) / max(1, total - warm)
        return self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))

    def _checkpoint_path(self) -> Path | None:
        return self.cfg.checkpoint_dir / f"{self.cfg.tag}-last.pt" if self.cfg.checkpoint_dir else None

    def save(self, epoch: int) -> None:
        path = self._checkpoint_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                    "epoch": epoch, "step": self.step}, path)

    def _maybe_resume(self) -> None:
        path = self._checkpoint_path()
        if self.cfg.resume and path is not None and path.is_file():
            state = torch.load(path, weights_only=True)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.start_epoch, self.step = int(state["epoch"]) + 1, int(state["step"])

    def fit(self, batches: Sequence[Any]) -> TrainResult:
        """Train for cfg.epochs over `batches` (shuffled each epoch); returns what happened."""
        cfg = self.cfg
        self._maybe_resume()
        total = max(1, cfg.epochs * len(batches) // cfg.grad_accum)
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        log = _JsonlLog(cfg.metrics_path)
        bar = _Progress(cfg.progress, cfg.tag)
        t0 = time.monotonic()
        history: list[dict[str, float]] = []
        last = float("nan")
        stopped = False
        epoch = self.start_epoch
        self.model.train()
        for epoch in range(self.start_epoch, cfg.epochs):
            frozen = epoch < cfg.freeze_embeddings_epochs
            for p in self.embedding_params:
                p.requires_grad_(not frozen)
            order = list(range(len(batches)))
            random.Random(cfg.seed * 1000 + epoch).shuffle(order)
            for i, bi in enumerate(order):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    terms = self.loss_fn(batches[bi], self.step)
                (terms["loss"] / cfg.grad_accum).backward()  # type: ignore[no-untyped-call]
                if (i + 1) % cfg.grad_accum and i + 1 != len(order):
                    continue
                for g in self.opt.param_groups:
                    g["lr"] = self._lr(self.step, total)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                self.step += 1
                last = float(terms["loss"].detach())
                if self.step % cfg.log_every == 0 or i + 1 == len(order):
                    row = {"tag": cfg.tag, "step": self.step, "epoch": epoch + (i + 1) / len(order),
                           "lr": self.opt.param_groups[0]["lr"], "elapsed_s": time.monotonic() - t0,
                           "embeddings_frozen": float(frozen),
                           **{k: float(v.detach()) for k, v in terms.items()}}
                    history.append(row)
                    log.write(row)
                bar.update(epoch, cfg.epochs, i + 1, len(order), last)
                if (cfg.max_seconds is not None and time.monotonic() - t0 > cfg.max_seconds) or \
                        (cfg.max_steps is not None and self.step >= cfg.max_steps):
                    stopped = True
                    break
            self.save(epoch)
            if stopped:
                break
        bar.close()
        for p in self.embedding_params:
            p.requires_grad_(True)
        self.model.eval()
        done = epoch + 1 if not stopped else epoch + (i + 1) / len(batches)
        return TrainResult(self.step, float(done), time.monotonic() - t0, last, self.precision, stopped, history)


class _JsonlLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


class _Progress:
    """One carriage-returned line on a terminal; a line every 10% otherwise (CI logs stay short)."""

    def __init__(self, enabled: bool, tag: str) -> None:
        self.enabled, self.tag = enabled, tag
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.last_decile = -1

    def update(self, epoch: int, epochs: int, i: int, n: int, loss: float) -> None:
        if not self.enabled:
            return
        rate = i / max(time.monotonic() - self.t0, 1e-9) if epoch == 0 else 0.0
        line = f"[{self.tag}] epoch {epoch + 1}/{epochs} {i}/{n} loss {loss:.4g}" + (f" {rate:.1f} it/s" if rate else "")
        if self.tty:
            sys.stderr.write("\r" + line.ljust(70))
            sys.stderr.flush()
        else:
            decile = (epoch * n + i) * 10 // max(epochs * n, 1)
            if decile != self.last_decile:
                self.last_decile = decile
                print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def batched(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of `size` (the last may be shorter)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
