"""`edgefarm golden record`: write a suite's references from a teacher (an artifact or a "module:function").

Each item is generated twice with its seed; an item whose two teacher outputs differ is not recorded (a
reference the teacher itself cannot reproduce would make the suite flaky) and the call fails naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import UserError
from harness.golden.generators import Generator, make_generator
from harness.golden.suite import Header, Item, Logits, Teacher, Tensor, load_suite, write_suite
from harness.records import now_rfc3339
from harness.version import harness_version


@dataclass
class Recorded:
    path: Path
    recorded: int  # items that got a (new) reference
    kept: int  # items that already had one and were left alone
    teacher: Teacher

    def __str__(self) -> str:
        kept = f", kept {self.kept} existing" if self.kept else ""
        return f"{self.path}: recorded {self.recorded} reference(s) from {self.teacher.ref}{kept}"


def record_references(suite_path: Path, teacher: str | Path | Generator, *, out: Path | None = None,
                      overwrite: bool = False, note: str | None = None, ref: str | None = None,
                      n_ctx: int = 512) -> Recorded:
    """Fill in references from `teacher`; write to `out` (default: the suite file, in place).

    Items that already have a reference keep it unless `overwrite`. `ref` replaces the teacher's path in the
    header (e.g. a name that means something on other machines). Raises UserError, writing nothing,
    when the teacher fails or is not deterministic on any item.
    """
    suite = load_suite(suite_path, require_reference=False)
    gen = make_generator(teacher, n_ctx=n_ctx) if isinstance(teacher, (str, Path)) else teacher
    todo = [i for i in suite.items if overwrite or i.reference is None]
    outputs = {o.id: o for o in gen.generate(todo, {i.id for i in todo})} if todo else {}
    problems: list[str] = []
    items: list[Item] = []
    for it in suite.items:
        o = outputs.get(it.id)
        if o is None:
            items.append(it)
            continue
        where = f"{suite_path}:{it.line} (id {it.id!r})"
        if o.error is not None:
            problems.append(f"{where}: {o.error}")
        elif it.kind == "text":
            if o.text is None:
                problems.append(f"{where}: the teacher returned no text")
            elif o.repeat_text is not None and o.repeat_text != o.text:
                problems.append(f"{where}: the teacher is not deterministic with seed {it.generation.seed}")
            else:
                lg = o.logits or {}
                logits = Logits(ids=lg["top_ids"], values=lg["top_values"]) if "top_ids" in lg else None
                items.append(replace(it, reference=o.text, reference_logits=logits))
        else:
            if not o.tensors:
                problems.append(f"{where}: the teacher returned no tensors")
                continue
            if o.repeat_tensors is not None and any(
                    k not in o.repeat_tensors or not (o.repeat_tensors[k] == v).all() for k, v in o.tensors.items()):
                problems.append(f"{where}: the teacher's outputs differ between two runs")
                continue
            items.append(replace(it, reference={k: Tensor.of(v) for k, v in o.tensors.items()}))
    if problems:
        shown = "\n  ".join(problems[:20])
        raise UserError(f"recording references from {gen.describe.ref} failed for {len(problems)} item(s); "
                        f"nothing written:\n  {shown}")
    d = gen.describe
    t = Teacher(kind="callable" if d.kind == "callable" else "artifact", ref=ref or d.ref, sha256=d.sha256,
                recorded_at=now_rfc3339(), harness_version=harness_version(),
                note=note if note is not None else (suite.header.teacher.note if suite.header.teacher else None))
    header: Header = replace(suite.header, teacher=t)
    dest = out or suite_path
    write_suite(dest, header, items)
    return Recorded(path=dest, recorded=len(todo), kept=len(suite.items) - len(todo), teacher=t)
