"""distill's losses, quantizers and metrics against values computed by hand (in the comments)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from distill import losses, metrics  # noqa: E402
from distill.quant import fake_quant_activation, fake_quant_weight  # noqa: E402

LN3 = math.log(3.0)


def test_kl_distill_temperature_scaled() -> None:
    # T=3: teacher [0,0]/3 -> p=[.5,.5]; student [0, 3 ln3]/3 = [0, ln3] -> q=[.25,.75]
    # KL = .5 ln(.5/.25) + .5 ln(.5/.75) = 0.1438410; times T^2 = 9 -> 1.2945687
    s = torch.tensor([[0.0, 3 * LN3]])
    t = torch.tensor([[0.0, 0.0]])
    assert losses.kl_distill(s, t, temperature=3.0).item() == pytest.approx(1.2945687, abs=1e-6)


def test_kd_loss_mixes_soft_and_hard_and_ignores_padding() -> None:
    # hard: CE of logits [0, 3 ln3] for label 0 = ln(1 + 27) = ln 28 = 3.3322045
    # alpha .5: .5 * 1.2945687 + .5 * 3.3322045 = 2.3133866; the second (ignored) row changes nothing
    s = torch.tensor([[0.0, 3 * LN3], [5.0, -5.0]])
    t = torch.tensor([[0.0, 0.0], [-9.0, 9.0]])
    labels = torch.tensor([0, losses.IGNORE_INDEX])
    assert losses.kd_loss(s, t, labels, temperature=3.0, alpha=0.5).item() == pytest.approx(2.3133866, abs=1e-6)
    assert losses.kd_loss(s, t, labels, alpha=1.0).item() == pytest.approx(1.2945687, abs=1e-6)
    assert losses.kd_loss(s, t, labels, alpha=0.0).item() == pytest.approx(math.log(28), abs=1e-6)


def test_alpha_schedule_anneals_from_distillation_to_hard_labels() -> None:
    sched = losses.AlphaSchedule(start=0.9, end=0.5, total_steps=100)
    assert sched(0) == pytest.approx(0.9)
    assert sched(50) == pytest.approx(0.7)  # cosine midpoint
    assert sched(100) == pytest.approx(0.5)
    assert sched(1000) == pytest.approx(0.5)


def test_hidden_mimicry_same_width_and_projected() -> None:
    # same width: ((1-0)^2 + (2-0)^2) / 2 = 2.5 at the real position; the masked position is ignored
    m = losses.HiddenMimicry(2, 2, [(0, 0)])
    s = torch.tensor([[[1.0, 2.0], [100.0, 100.0]]])
    t = torch.zeros(1, 2, 2)
    mask = torch.tensor([[1, 0]])
    assert m([s], [t], mask).item() == pytest.approx(2.5)
    # width 1 -> 2 through a projection fixed to [[2],[0]]: [1] -> [2, 0] vs [1, 1]: (1 + 1) / 2 = 1
    p = losses.HiddenMimicry(1, 2, [(0, 0)])
    assert isinstance(p.proj, torch.nn.Linear)
    with torch.no_grad():
        p.proj.weight.copy_(torch.tensor([[2.0], [0.0]]))
    assert p([torch.tensor([[[1.0]]])], [torch.tensor([[[1.0, 1.0]]])]).item() == pytest.approx(1.0)


def test_attention_transfer() -> None:
    # rows: [1,0] vs [1,0] -> 0; [.5,.5] vs [1,0] -> .25 + .25 = .5; mean over rows .25
    s = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    t = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert losses.attention_transfer(s, t).item() == pytest.approx(0.25)
    # different head counts compare head-averaged maps: two student heads averaging to s
    s2 = torch.cat([torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]]), torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])], dim=1)
    assert losses.attention_transfer(s2, t).item() == pytest.approx(0.25)


def test_embedding_losses() -> None:
    # cos([1,0],[1,1]) = 1/sqrt 2 -> 1 - 0.7071068 = 0.2928932
    assert losses.cosine_embedding_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])).item() == \
        pytest.approx(0.2928932, abs=1e-6)
    assert losses.mse_embedding_loss(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)).item() == pytest.approx(2.5)
    # student pair orthogonal (off-diagonal 0), teacher pair at 45 degrees (0.7071): (0.7071)^2 = 0.5
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert losses.similarity_matrix_loss(s, t).item() == pytest.approx(0.5, abs=1e-6)


def test_fake_quant_weight_int8_and_int4() -> None:
    w = torch.tensor([[1.0, -0.45, 0.26]])
    # int8: scale 1/127; 0.26 * 127 = 33.02 -> 33/127; -0.45 * 127 = -57.15 -> -57/127
    q8 = fake_quant_weight(w, 8)
    assert q8.tolist()[0] == pytest.approx([1.0, -57 / 127, 33 / 127], abs=1e-7)
    # int4: scale 1/7; -0.45 * 7 = -3.15 -> -3, 0.26 * 7 = 1.82 -> 2
    q4 = fake_quant_weight(w, 4)
    assert q4.tolist()[0] == pytest.approx([1.0, -3 / 7, 2 / 7], abs=1e-7)
    # int4 in blocks of 2, MatMulNBits-style: block [1, -.45]: scale 1/-8, -.45 / -.125 = 3.6 -> 4 -> -0.5;
    # block [.26]: scale .26/-8 -> .26 exactly
    qb = fake_quant_weight(w, 4, block_size=2)
    assert qb.tolist()[0] == pytest.approx([1.0, -0.5, 0.26], abs=1e-6)
    # the straight-through estimator passes gradients unchanged
    wg = w.clone().requires_grad_(True)
    fake_quant_weight(wg, 8).sum().backward()
    assert wg.grad is not None and wg.grad.tolist() == [[1.0, 1.0, 1.0]]


def test_fake_quant_activation_matches_dynamic_quantize_linear() -> None:
    # range [-1, 3]: scale 4/255, zero point round(63.75) = 64
    # 3 -> round(191.25) + 64 = 255 -> 191 * 4/255; -1 -> round(-63.75) + 64 = 0 -> -64 * 4/255; 0 -> 0
    x = torch.tensor([-1.0, 0.0, 3.0])
    assert fake_quant_activation(x).tolist() == pytest.approx([-64 * 4 / 255, 0.0, 191 * 4 / 255], abs=1e-6)


def test_spearman_hand_values() -> None:
    # 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 12 / 60 = 0.8
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties share ranks: [.5, .5, 2] vs [0, 1, 2] -> 1.5 / sqrt(1.5 * 2) = 0.8660254
    assert metrics.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254, abs=1e-7)
    assert metrics.paraphrase_accuracy(
        anchor=__import__("numpy").array([[1.0, 0.0], [1.0, 0.0]]),
        para=__import__("numpy").array([[1.0, 0.1], [0.0, 1.0]]),
        distractor=__import__("numpy").array([[0.0, 1.0], [1.0, 0.0]]))[0] == pytest.approx(0.5)
