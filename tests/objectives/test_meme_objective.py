"""The MEME bound against hand computations, and the details a naive version gets wrong."""

import math

import pytest
import torch

from memevae.objectives import meme_paired_bound, meme_unpaired_bound


def hand_bound(log_ps, log_ratio, log_qt, c):
    """Eq. 6 written out with Python floats for one item; log_qt[0] is the posterior sample."""
    log_qt_s = math.log(sum(math.exp(v) for v in log_qt) / len(log_qt))
    w = math.exp(log_qt[0] - log_qt_s)
    return w * (log_ps + log_ratio - log_qt[0]) + c * log_qt_s, w, log_qt_s


@pytest.mark.parametrize("c", [1.0, 10.0])
def test_paired_bound_equals_hand_computation(c):
    log_ps, log_ratio = [-3.0, -1.5], [-0.7, -2.0]
    log_qt = [[-2.0, -4.0], [-3.0, -1.0], [-2.5, -6.0]]  # (K+1, B) with K = 2
    out = meme_paired_bound(torch.tensor(log_ps), torch.tensor(log_ratio), torch.tensor(log_qt), classifier_scale=c)
    for b in range(2):
        bound, w, log_qt_s = hand_bound(log_ps[b], log_ratio[b], [row[b] for row in log_qt], c)
        assert out.bound[b].item() == pytest.approx(bound, rel=1e-6)
        assert out.weight[b].item() == pytest.approx(w, rel=1e-6)
        assert out.log_classifier_marginal[b].item() == pytest.approx(log_qt_s, rel=1e-6)


def test_weight_carries_no_gradient():
    """App. B: with the stop-gradient the derivative w.r.t. log q(t|z) is -w + c softmax_0 only;
    the naive estimator (w not detached) adds dw/dlog q(t|z) * (...) and differs."""
    c = 10.0
    log_ps, log_ratio = torch.tensor([-3.0]), torch.tensor([-0.7])
    log_qt = torch.tensor([[-2.0], [-3.0], [-2.5]], requires_grad=True)
    meme_paired_bound(log_ps, log_ratio, log_qt, c, "stop-gradient").bound.sum().backward()
    softmax = torch.softmax(log_qt.detach()[:, 0], 0)
    w = (len(softmax) * softmax[0]).item()
    expected = c * softmax.clone()
    expected[0] -= w
    torch.testing.assert_close(log_qt.grad[:, 0], expected)

    full = torch.tensor([[-2.0], [-3.0], [-2.5]], requires_grad=True)
    meme_paired_bound(log_ps, log_ratio, full, c, "full").bound.sum().backward()
    assert not torch.allclose(full.grad, log_qt.grad)
    assert meme_paired_bound(log_ps, log_ratio, full, c).weight.grad_fn is None


def test_logsumexp_includes_the_posterior_sample():
    """App. D: log q(t|s) averages over z_1..z_K AND z, so w = q(t|z)/q(t|s) <= K+1 stays finite
    even when z explains t far better than every other sample (a K-sample estimate overflows)."""
    K = 4
    log_qt = torch.full((K + 1, 3), -1000.0)
    log_qt[0] = torch.tensor([0.0, -10.0, 50.0])
    out = meme_paired_bound(torch.zeros(3), torch.zeros(3), log_qt, classifier_scale=1.0)
    assert torch.isfinite(out.bound).all()
    torch.testing.assert_close(out.weight, torch.full((3,), K + 1.0))
    torch.testing.assert_close(out.log_classifier_marginal, log_qt[0] - math.log(K + 1))
    naive_marginal = torch.logsumexp(log_qt[1:], 0) - math.log(K)
    assert torch.isinf(torch.exp(log_qt[0] - naive_marginal)).all()


def test_weight_bounded_by_k_plus_one_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    log_qt = torch.randn(11, 1000, generator=g) * 50
    out = meme_paired_bound(torch.zeros(1000), torch.zeros(1000), log_qt)
    assert (out.weight <= 11 + 1e-3).all() and (out.weight >= 0).all() and torch.isfinite(out.bound).all()


def test_rejects_bad_shapes_and_estimator():
    with pytest.raises(ValueError, match="estimator"):
        meme_paired_bound(torch.zeros(2), torch.zeros(2), torch.zeros(3, 2), estimator="naive")
    with pytest.raises(ValueError, match=r"\(K\+1, B\)"):
        meme_paired_bound(torch.zeros(2), torch.zeros(2), torch.zeros(3, 5))


def test_unpaired_bound_is_the_elbo_with_mixture_prior():
    out = meme_unpaired_bound(torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -0.5]), torch.tensor([-0.25, 1.0]))
    torch.testing.assert_close(out, torch.tensor([-3.75, -3.5]))
