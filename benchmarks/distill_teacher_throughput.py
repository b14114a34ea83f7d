"""Teacher (all-MiniLM-L6-v2) forward throughput: torch eager vs its ONNX export in onnxruntime, and bf16
autocast. The embedding example computes its teacher targets with whichever this shows faster (ORT here).

    .venv/bin/python benchmarks/distill_teacher_throughput.py [--batch 64] [--seq 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from distill.embed_student import TeacherSentence
from distill.export import onnx as ox
from distill.models.bert import load_hf_bert, minilm_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    teacher = TeacherSentence(load_hf_bert(minilm_dir()).eval())
    ids = torch.randint(1000, 20000, (a.batch, a.seq))
    mask = torch.ones_like(ids)
    names = ["input_ids", "attention_mask"]
    with tempfile.TemporaryDirectory() as tmp:
        path = ox.export_onnx(teacher, (ids[:2], mask[:2]), Path(tmp) / "t.onnx", names, ["embedding"],
                              {n: {0: "b", 1: "n"} for n in names})
        sess = ox.session(path)
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        times: dict[str, list[float]] = {"torch_fp32": [], "torch_bf16_autocast": [], "onnxruntime_fp32": []}
        for _ in range(a.repeats):  # interleaved, so a load change on a shared machine hits all three
            t = time.perf_counter()
            with torch.inference_mode():
                teacher(ids, mask)
            times["torch_fp32"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                teacher(ids, mask)
            times["torch_bf16_autocast"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ox.run(sess, feeds)
            times["onnxruntime_fp32"].append(time.perf_counter() - t)
    tokens = a.batch * a.seq
    print(json.dumps({"batch": a.batch, "seq": a.seq, "threads": a.threads, "loadavg": os.getloadavg(),
                      "tokens_per_s_best": {k: round(tokens / min(v), 1) for k, v in times.items()},
                      "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()}}, indent=1))


if __name__ == "__main__":
    main()
