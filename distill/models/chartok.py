"""A character-level SentencePiece-style vocabulary that llama.cpp's SPM tokenizer reproduces exactly.

Layout (what llama.cpp expects of a "llama" tokenizer): <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>
(type BYTE), then one NORMAL piece per character seen in the corpus, with spaces written as U+2581. No
piece is longer than one character, so SPM's bigram merges never fire and tokenisation is: prepend a space
(add_space_prefix), map spaces to U+2581, one token per known character, UTF-8 byte tokens otherwise.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

SPACE = "\u2581"
UNK, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
BYTE0 = N_SPECIAL


@dataclass(frozen=True)
class CharVocab:
    pieces: tuple[str, ...]  # the NORMAL pieces, in id order after the byte tokens

    @classmethod
    def from_text(cls, text: str, min_count: int = 3) -> CharVocab:
        counts = Counter(text.replace(" ", SPACE))
        counts[SPACE] += min_count  # always present
        chars = sorted((c for c, n in counts.items() if n >= min_count and c.isprintable() and c != " "),
                       key=lambda c: (-counts[c], c))
        return cls(tuple(chars))

    @property
    def size(self) -> int:
        return N_SPECIAL + 256 + len(self.pieces)

    def tokens(self) -> list[str]:
        return ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256)), *self.pieces]

    def scores(self) -> list[float]:
        return [0.0] * (N_SPECIAL + 256) + [-float(i) for i in range(len(self.pieces))]

    def types(self) -> list[int]:
        """gguf.TokenType values: UNKNOWN 2, CONTROL 3, BYTE 6, NORMAL 1."""
        return [2, 3, 3] + [6] * 256 + [1] * len(self.pieces)

    def encode(self, text: str, bos: bool = True) -> list[int]:
        index = {c: N_SPECIAL + 256 + i for i, c in enumerate(self.pieces)}
        out = [BOS] if bos else []
        for ch in (" " + text).replace(" ", SPACE):
            tid = index.get(ch)
            if tid is not None:
                out.append(tid)
            else:
                out.extend(BYTE0 + b for b in ch.encode("utf-8"))
        return out

    def decode(self, ids: list[int]) -> str:
        buf = bytearray()
        for t in ids:
            if BYTE0 <= t < BYTE0 + 256:
                buf.append(t - BYTE0)
            elif t >= N_SPECIAL + 256:
                buf.extend(self.pieces[t - N_SPECIAL - 256].replace(SPACE, " ").encode("utf-8"))
        text = buf.decode("utf-8", errors="replace")
        return text[1:] if text.startswith(" ") else text
