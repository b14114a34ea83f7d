"""chrF, ROUGE-L and cosine against values computed by hand (the working is in each comment)."""

from __future__ import annotations

import math

import pytest

from harness.golden.similarity import chrf, cosine, lcs_length, rouge_l, tokens


def test_chrf_identical_and_disjoint() -> None:
    assert chrf("hello world", "hello world") == 1.0
    assert chrf("abc", "xyz") == 0.0
    assert chrf("", "") == 1.0
    assert chrf("", "abc") == 0.0


def test_chrf_ignores_whitespace() -> None:
    assert chrf("a b", "ab") == 1.0


def test_chrf_symmetric_case() -> None:
    # hyp "abc", ref "abd". Order 1: {a,b,c} vs {a,b,d}: 2 matches, P = R = 2/3.
    # Order 2: {ab,bc} vs {ab,bd}: 1 match, P = R = 1/2. Order 3: {abc} vs {abd}: P = R = 0.
    # Orders 4-6: neither side has any n-gram, skipped. avg P = avg R = (2/3 + 1/2 + 0) / 3 = 7/18,
    # and F-beta of P == R is P itself.
    assert chrf("abc", "abd") == pytest.approx(7 / 18)


def test_chrf_recall_weighted() -> None:
    # hyp "ab", ref "abc". Order 1: 2 matches, P = 2/2 = 1, R = 2/3. Order 2: {ab} vs {ab,bc}: P = 1, R = 1/2.
    # Order 3+: the hypothesis has none, skipped. avg P = 1, avg R = 7/12.
    # F2 = (1 + 4) * 1 * 7/12 / (4 * 1 + 7/12) = (35/12) / (55/12) = 7/11.
    assert chrf("ab", "abc") == pytest.approx(7 / 11)
    # beta = 2 weighs recall: the reverse direction (P = 7/12, R = 1) scores higher.
    # F2 = 5 * 7/12 / (4 * 7/12 + 1) = (35/12) / (40/12) = 7/8.
    assert chrf("abc", "ab") == pytest.approx(7 / 8)


def test_chrf_clips_repeated_ngrams() -> None:
    # hyp "aaaa", ref "aa". Order 1: hyp a x4, ref a x2: clipped match 2, P = 1/2, R = 1.
    # Order 2: hyp aa x3, ref aa x1: match 1, P = 1/3, R = 1. Order 3+: ref has none, skipped.
    # avg P = (1/2 + 1/3) / 2 = 5/12, avg R = 1. F2 = 5 * 5/12 / (4 * 5/12 + 1) = (25/12) / (32/12) = 25/32.
    assert chrf("aaaa", "aa") == pytest.approx(25 / 32)


def test_tokens_lowercase_and_drop_punctuation() -> None:
    assert tokens("The Cat, the HAT!") == ["the", "cat", "the", "hat"]
    assert tokens("Grüße aus Köln") == ["grüße", "aus", "köln"]


def test_lcs_length() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # CLRS: BCBA
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_lin_2004_examples() -> None:
    # Lin (2004) section 3.1: reference "police killed the gunman".
    # "police kill the gunman": LCS = police the gunman = 3, P = R = 3/4.
    # "the gunman kill police": LCS = the gunman = 2, P = R = 2/4.
    assert rouge_l("police kill the gunman", "police killed the gunman") == pytest.approx(0.75)
    assert rouge_l("the gunman kill police", "police killed the gunman") == pytest.approx(0.5)


def test_rouge_l_asymmetric_lengths() -> None:
    # hyp "a b" vs ref "a b c d": LCS 2, P = 1, R = 1/2, F1 = 2 * 1 * 1/2 / 1.5 = 2/3.
    assert rouge_l("a b", "a b c d") == pytest.approx(2 / 3)
    # "the cat sat on the mat" vs "the cat is on the mat": LCS 5 of 6 each way: 5/6.
    assert rouge_l("the cat sat on the mat", "The cat is on the mat.") == pytest.approx(5 / 6)
    assert rouge_l("", "") == 1.0
    assert rouge_l("x", "") == 0.0


def test_cosine() -> None:
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([1, 2], [2, 4]) == pytest.approx(1.0)
    assert cosine([1, 1], [1, 0]) == pytest.approx(1 / math.sqrt(2))
    assert cosine([0, 0], [1, 0]) == 0.0
    with pytest.raises(ValueError):
        cosine([1, 2, 3], [1, 2])


def test_chrf_matches_sacrebleu_published_example() -> None:
    # The chrF metric card (Hugging Face datasets, computed by sacrebleu, chrF2 char_order 6 word_order 0)
    # prints {'score': 61.576379378113785} for this pair.
    hyp = "The relationship between Obama and Netanyahu is not exactly friendly."
    ref = "The ties between Obama and Netanyahu are not particularly friendly."
    assert chrf(hyp, ref) == pytest.approx(0.61576379378113785, abs=1e-12)
