"""distill's building blocks: pruning is exact, QAT mirrors onnxruntime int8, the trainer is deterministic,
checkpoints and logs; the char vocabulary round-trips; the torch MiniLM matches the numpy reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from distill import prune  # noqa: E402
from distill.models.bert import BertConfig, BertEncoder, SentenceEncoder  # noqa: E402
from distill.models.chartok import CharVocab  # noqa: E402
from distill.quant import QuantConfig, prepare_qat, strip_qat  # noqa: E402
from distill.trainer import TrainConfig, Trainer, seed_everything  # noqa: E402


def _tiny_bert(seed: int = 0) -> BertEncoder:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden=32, head_dim=8, heads=[4, 4], intermediate=[64, 64], max_positions=16,
                     type_vocab=0, embed_dim=8)
    return BertEncoder(cfg).eval()


def test_structured_pruning_equals_masking() -> None:
    enc = _tiny_bert()
    ids = torch.randint(0, 50, (3, 7))
    mask = torch.ones_like(ids)
    keep_h, keep_c = torch.tensor([0, 2]), torch.arange(0, 64, 2)
    layer = enc.layers[1]
    with torch.no_grad():
        layer.attn.head_gate = torch.tensor([1.0, 0.0, 1.0, 0.0])
        layer.ffn_gate = torch.zeros(64).index_fill_(0, keep_c, 1.0)
        masked = enc(ids, mask).last
        layer.attn.head_gate = layer.ffn_gate = None
        before = sum(p.numel() for p in enc.parameters())
        prune.prune_layer(layer, keep_h, keep_c)
        pruned = enc(ids, mask).last
    assert torch.allclose(masked, pruned, atol=1e-5)
    assert sum(p.numel() for p in enc.parameters()) < before


def test_saliency_prunes_to_target_sizes() -> None:
    enc = _tiny_bert()
    ids = torch.randint(0, 50, (4, 6))
    batches = [(ids, torch.ones_like(ids))]
    target = torch.randn(4, 32)

    def loss(b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return (SentenceEncoder(enc)(*b) - target).pow(2).mean()

    sal = prune.saliency(enc, loss, batches)
    assert [s.shape[0] for s in sal.heads] == [4, 4] and all(float(s.sum()) > 0 for s in sal.heads)
    prune.prune_to(enc, sal, heads=2, channels=16)
    assert enc.cfg.heads == [2, 2] and enc.cfg.intermediate == [16, 16]
    assert SentenceEncoder(enc)(*batches[0]).shape == (4, 32)


def test_qat_forward_matches_onnxruntime_int8(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from distill.export import onnx as ox

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8)).eval()
    x = torch.randn(5, 16)
    fp32 = ox.export_onnx(model, (x,), tmp_path / "m.onnx", ["x"], ["y"], {"x": {0: "b"}})
    int8 = ox.quantize_int8(fp32, tmp_path / "m8.onnx")
    got = ox.run(ox.session(int8), {"x": x.numpy()})
    with torch.no_grad():
        fq = prepare_qat(model, QuantConfig(8, 8))(x).numpy()
        strip_qat(model)
        ref = model(x).numpy()
    # the fake-quant forward is the int8 artifact's function, far closer to it than fp32 is
    assert np.abs(got - fq).max() < 1e-4
    assert np.abs(got - ref).max() > 10 * np.abs(got - fq).max()


def _train_once(tmp: Path, accum: int, freeze: int = 0) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 10, (4, 2), generator=g), torch.randn(4, 1, generator=g)) for _ in range(4)]

    def loss_fn(b: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        return {"loss": (model(b[0]) - b[1]).pow(2).mean()}

    emb = model[0].weight
    cfg = TrainConfig(epochs=2, lr=1e-2, grad_accum=accum, checkpoint_dir=tmp, metrics_path=tmp / "m.jsonl",
                      log_every=1, progress=False, freeze_embeddings_epochs=freeze, precision="fp32")
    start = emb.detach().clone()
    Trainer(model, loss_fn, cfg, embedding_params=[emb]).fit(batches)
    return model, [start, emb.detach().clone()]


def test_trainer_deterministic_checkpoints_log_and_frozen_embeddings(tmp_path: Path) -> None:
    a, _ = _train_once(tmp_path / "a", 1)
    b, _ = _train_once(tmp_path / "b", 1)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    rows = [json.loads(line) for line in (tmp_path / "a" / "m.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 8 and {"loss", "lr", "epoch"} <= set(rows[-1])
    state = torch.load(tmp_path / "a" / "train-last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 8
    c, _ = _train_once(tmp_path / "c", 2)
    rows = [json.loads(line) for line in (tmp_path / "c" / "m.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4  # two micro-batches per optimiser step
    # frozen for 2 of 2 epochs: the table never moves; the rest does
    d, (start, end) = _train_once(tmp_path / "d", 1, freeze=2)
    assert torch.equal(start, end)


def test_char_vocab_roundtrip_and_byte_fallback() -> None:
    v = CharVocab.from_text("hello world hello world hello world")
    ids = v.encode("hello é world")
    assert ids[0] == 1 and v.decode(ids) == "hello é world"
    assert len(set(v.tokens())) == v.size  # a duplicate would make llama.cpp abort


def test_torch_minilm_matches_numpy_reference() -> None:
    embedder = pytest.importorskip("harness.golden.embedder")
    from distill.models.bert import load_hf_bert, minilm_dir

    try:
        d = minilm_dir()
    except Exception as exc:  # noqa: BLE001 - the teacher package is optional
        pytest.skip(str(exc))
    from tokenizers import Tokenizer

    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply."]
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.no_padding()
    from distill.embed_student import pad

    ids, mask = pad([(e.ids, e.attention_mask) for e in tok.encode_batch(texts)])
    with torch.no_grad():
        ours = SentenceEncoder(load_hf_bert(d).eval())(ids, mask).numpy()
    ref = np.asarray(embedder.default_embedder().embed(texts))
    assert np.abs(ours - ref).max() < 1e-4
    sims = ours @ ours.T
    assert sims[0, 1] > 0.7 and sims[0, 2] < 0.2


def test_int4_block_fake_quant_matches_onnxruntime_matmulnbits(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx_ir")  # onnxruntime's MatMulNBits quantizer imports it
    from distill.export import onnx as ox

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 8)).eval()
    x = torch.randn(5, 3, 64)  # 3-D so the exporter writes MatMul (which MatMulNBits replaces), not Gemm
    fp32 = ox.export_onnx(model, (x,), tmp_path / "m.onnx", ["x"], ["y"], {"x": {0: "b"}})
    int4 = ox.quantize_int4(fp32, tmp_path / "m4.onnx", block_size=32)
    got = ox.run(ox.session(int4), {"x": x.numpy()})
    with torch.no_grad():
        fq = prepare_qat(model, QuantConfig(4, None, block_size=32, quantize_embeddings=False))(x).numpy()
        strip_qat(model)
        ref = model(x).numpy()
    assert np.abs(got - fq).max() < 1e-5
    assert np.abs(got - ref).max() > 1e-3
