"""An offline text corpus from what ships on every Python install: the standard library's docstrings.

Documents are modules; the train/held-out split is by module, so no held-out sentence shares a document
with a training sentence.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Document:
    """One module's docstring sentences, in order."""

    name: str
    sentences: tuple[str, ...]


def _clean_sentences(text: str) -> list[str]:
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        flat = " ".join(para.split())
        if not flat or flat.startswith((">>>", "...")):
            continue
        for sent in _SENT_SPLIT.split(flat):
            words = sent.split()
            alpha = len(_WORD.findall(sent))
            # Prose only: code samples, signatures and tables are mostly symbols.
            if 6 <= len(words) <= 40 and alpha >= 0.8 * len(words) and sent[0].isupper():
                out.append(sent)
    return out


def stdlib_documents(root: Path | None = None, max_files: int | None = None) -> list[Document]:
    """Docstring sentences of every stdlib module under `root` (default: this interpreter's stdlib)."""
    base = root or Path(sysconfig.get_paths()["stdlib"])
    skip = ("site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3")
    files = sorted(p for p in base.rglob("*.py") if not any(part in skip for part in p.relative_to(base).parts))
    docs: list[Document] = []
    for path in files[:max_files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        sents: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    sents.extend(_clean_sentences(doc))
        if sents:
            docs.append(Document(str(path.relative_to(base)), tuple(dict.fromkeys(sents))))
    return docs


def is_heldout(doc: Document, fraction: float = 0.15) -> bool:
    """A stable, content-independent split: the module name's hash decides."""
    h = int.from_bytes(hashlib.sha256(doc.name.encode()).digest()[:4], "big")
    return h / 2**32 < fraction


def split_documents(docs: list[Document], fraction: float = 0.15) -> tuple[list[Document], list[Document]]:
    """(train, held-out) by module."""
    train = [d for d in docs if not is_heldout(d, fraction)]
    held = [d for d in docs if is_heldout(d, fraction)]
    return train, held


def plain_text(docs: list[Document]) -> str:
    """One sentence per line, documents separated by a blank line (the causal-LM corpus)."""
    return "\n\n".join("\n".join(d.sentences) for d in docs)
