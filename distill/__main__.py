"""`python -m distill {embed-example,lm-example,sweep}`: run an example or a sweep, write artifacts,
summary.json and the example's gate policy to --out. A DistillError prints as one line (exit 2)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from distill.errors import DistillError

POLICY = Path(__file__).with_name("examples") / "policy.toml"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _embed(args: argparse.Namespace) -> int:
    from distill import farm
    from distill.embed_student import StudentSpec
    from distill.examples.embed import EmbedExampleConfig, run

    spec = StudentSpec(layers=_ints(args.layers), hidden=args.hidden, embed_dim=args.embed_dim, heads=args.heads,
                       intermediate=args.intermediate)
    cfg = EmbedExampleConfig(out=args.out, spec=spec, max_train=args.max_train, epochs=args.epochs,
                             qat_epochs=args.qat_epochs, seed=args.seed, threads=args.threads,
                             max_files=args.max_files)
    report = run(cfg)
    shutil.copy(POLICY, args.out / "policy.toml")
    if not args.no_bench:
        st = report["student"]
        arts = [Path(st[k]["path"]) for k in ("fp32", "int8_ptq", "int8_qat")]
        res = farm.bench_and_gate(arts, args.out, args.out / "policy.toml", spec=farm.EMBED_SPEC)
        report["farm"] = {k: v for k, v in res.items() if k != "gate"}
        report["farm"]["measured"] = farm.run_metrics(args.out)
        (args.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    _print_embed(report)
    return 0


def _print_embed(r: dict[str, Any]) -> None:
    s = r["summary"]
    print(f"teacher: {s['teacher_parameters']:,} parameters; student: {s['student_parameters']:,} "
          f"({s['parameter_ratio']:.1%} of the teacher's parameters"
          + (f", fp32 ONNX {s['onnx_bytes_ratio']:.1%} of the teacher's bytes)" if "onnx_bytes_ratio" in s else ")"))
    print(f"quality (Spearman vs teacher, held-out pairs): fp32 {s['spearman_fp32']:.4f}  "
          f"int8 PTQ {s['spearman_int8_ptq']:.4f} (loss {s['int8_loss_ptq']:+.4f})  "
          f"int8 QAT {s['spearman_int8_qat']:.4f} (loss {s['int8_loss_qat']:+.4f})")
    if "spearman_int8_ptq_control" in s:
        print(f"control (fp32 fine-tuned for the QAT's steps, then PTQ): fp32 {s['spearman_fp32_control']:.4f}  "
              f"int8 PTQ {s['spearman_int8_ptq_control']:.4f} (loss {s['int8_loss_ptq_control']:+.4f})")
    print(f"paraphrase checks: teacher {s['paraphrase_accuracy_teacher']:.0%}, student fp32 "
          f"{s['paraphrase_accuracy_fp32']:.0%}, int8 QAT {s['paraphrase_accuracy_int8_qat']:.0%}")
    print("checks: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in s["checks"].items()))
    if "farm" in r:
        print(f"farm (local): {r['farm']['status']}: {r['farm']['message']}")
    print(f"wall time {r['run']['seconds']} s; phases {r['run']['phases']}")


def _lm(args: argparse.Namespace) -> int:
    from distill.examples.lm import LmExampleConfig, run

    cfg = LmExampleConfig(out=args.out, teacher_steps=args.teacher_steps, student_steps=args.student_steps,
                          baseline=not args.no_baseline, seed=args.seed, threads=args.threads,
                          max_files=args.max_files)
    r = run(cfg)
    s = r["summary"]
    print(f"teacher ppl {s['perplexity_teacher']:.3f}; student ({s['parameter_ratio']:.1%} of the parameters) "
          f"ppl {s['perplexity_student']:.3f}"
          + (f"; same student on hard labels only {s['perplexity_student_hard_labels_only']:.3f}"
             if "perplexity_student_hard_labels_only" in s else ""))
    for name, a in r["artifacts"].items():
        print(f"  {name}: {a['bytes']:,} bytes, llama.cpp vs torch max |logit diff| {a['max_abs_logit_diff']:.4f}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from distill.examples.embed import EmbedExampleConfig
    from distill.sweep import run_sweep

    base = EmbedExampleConfig(max_train=args.max_train, epochs=args.epochs, qat_epochs=1, seed=args.seed,
                              threads=args.threads, max_files=args.max_files, ptq_control=False)
    r = run_sweep(args.out, base=base, bench=not args.no_bench)
    shutil.copy(POLICY, args.out / "policy.toml")
    for p in r["points"]:
        mark = "*" if p["name"] in r["pareto"] else " "
        mem = f"{p['peak_rss_mib']:.1f} MiB" if p.get("peak_rss_mib") is not None else "-"
        print(f"{mark} {p['name']:<48} {p['bytes']:>11,} B  rss {mem:>10}  spearman {p['spearman_vs_teacher']:.4f}"
              f"  gate {p.get('gate') or '-'}")
    print(f"pareto front (* above) on {r['x_metric']} vs {r['y_metric']}; {args.out / 'sweep.json'}")
    if "farm" in r and r["farm"]["status"] == "unavailable":
        print(f"farm: {r['farm']['message']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m distill", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--threads", type=int, default=2)
    common.add_argument("--max-files", type=int, default=None, help="stdlib files to read (quick runs)")
    e = sub.add_parser("embed-example", parents=[common], help="distil all-MiniLM-L6-v2 into a small student")
    e.add_argument("--out", type=Path, default=Path("runs/distill-embed"))
    e.add_argument("--layers", default="1,3,5", help="teacher layers the student starts from")
    e.add_argument("--hidden", type=int, default=384)
    e.add_argument("--embed-dim", type=int, default=64)
    e.add_argument("--heads", type=int, default=6)
    e.add_argument("--intermediate", type=int, default=768)
    e.add_argument("--max-train", type=int, default=5000)
    e.add_argument("--epochs", type=int, default=2)
    e.add_argument("--qat-epochs", type=int, default=1)
    e.add_argument("--no-bench", action="store_true", help="skip edgefarm run/gate on the local device")
    e.set_defaults(func=_embed)
    lm = sub.add_parser("lm-example", parents=[common], help="train a llama teacher, distil a quarter-size student")
    lm.add_argument("--out", type=Path, default=Path("runs/distill-lm"))
    lm.add_argument("--teacher-steps", type=int, default=400)
    lm.add_argument("--student-steps", type=int, default=400)
    lm.add_argument("--no-baseline", action="store_true")
    lm.set_defaults(func=_lm)
    sw = sub.add_parser("sweep", parents=[common], help="student sizes x quantization, Pareto front")
    sw.add_argument("--out", type=Path, default=Path("runs/distill-sweep"))
    sw.add_argument("--max-train", type=int, default=3000)
    sw.add_argument("--epochs", type=int, default=1)
    sw.add_argument("--no-bench", action="store_true")
    sw.set_defaults(func=_sweep)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DistillError as exc:
        print(f"distill: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
