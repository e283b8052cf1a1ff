"""Loss and gradient of the taste fit: worked by hand and by finite differences."""

import math

import numpy as np
import pytest

from scoring.taste import Pairs, TasteInputs, _fixed_terms, _Problem, _whiten, taste_loss

ATOL = 1e-9
SQRT2 = math.sqrt(2.0)


def hand_case():
    """Four videos, two with a semantic score, four pairs.

    semantic [1, 3, -, -]: mean 2, std 1, so z = [-1, 1, 0, 0] (missing -> 0).
    embeddings e0 = e2 = (0.6, 0.8), e1 = (0.8, -0.6), e3 = (-0.8, 0.6); with
    w = (0.6, 0.8), w . e = [1, 0, 1, 0]: mean 0.5, std 0.5, z = [1, -1, 1, -1].
    frame dissimilarity [0, 2, 0, 2]: mean 1, std 1, z = [-1, 1, -1, 1];
    flicker [1, 1, 3, 3]: mean 2, std 1, z = [-1, -1, 1, 1];
    P = mean of the two = [-1, 0, 0, 1]: mean 0, std sqrt(1/2), z(P) = [-sqrt2, 0, 0, sqrt2].
    """
    inputs = TasteInputs(
        semantic=[1.0, 3.0, np.nan, np.nan],
        embeddings=[[0.6, 0.8], [0.8, -0.6], [0.6, 0.8], [-0.8, 0.6]],
        incoherence=[[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [2.0, 3.0]],
    )
    # (winner, loser, weight): (1, 0, 1), (2, 3, 2), (3, 1, 1), (0, 2, 0.5); sum of weights 4.5.
    pairs = Pairs([1, 2, 3, 0], [0, 3, 1, 2], [1.0, 2.0, 1.0, 0.5])
    return inputs, pairs


HAND = {"alpha": 1.0, "beta": 0.5, "gamma": 0.25, "w": np.array([0.6, 0.8])}
HYPER = {"margin": 1.0, "lambda_theta": 0.1, "lambda_w": 0.2, "w_all": np.array([1.0, 0.0])}


def test_loss_value_by_hand():
    # T = alpha z(s) + beta z(w.e) - gamma z(P):
    #   T0 = -1 + 0.5 + 0.25 sqrt2 = -0.5 + sqrt2/4
    #   T1 =  1 - 0.5 - 0          =  0.5
    #   T2 =  0 + 0.5 - 0          =  0.5
    #   T3 =  0 - 0.5 - 0.25 sqrt2 = -0.5 - sqrt2/4
    # residuals m - (T+ - T-):
    #   (1,0): 1 - (1 - sqrt2/4)  = sqrt2/4      ->  0.353553, hinge 0.353553
    #   (2,3): 1 - (1 + sqrt2/4)  = -sqrt2/4     -> -0.353553, hinge 0
    #   (3,1): 1 - (-1 - sqrt2/4) = 2 + sqrt2/4  ->  2.353553
    #   (0,2): 1 - (-1 + sqrt2/4) = 2 - sqrt2/4  ->  1.646447
    # weighted mean: (sqrt2/4 + 2 + sqrt2/4 + 0.5 (2 - sqrt2/4)) / 4.5
    #              = (3 + 3 sqrt2/8) / 4.5 = 2/3 + sqrt2/12 = 0.784518
    # penalty 0.1 (1 + 0.25 + 0.0625) = 0.13125
    # pull 0.2 ||(0.6, 0.8) - (1, 0)||^2 = 0.2 (0.16 + 0.64) = 0.16
    inputs, pairs = hand_case()
    loss = taste_loss(HAND["alpha"], HAND["beta"], HAND["gamma"], HAND["w"], inputs, pairs, **HYPER)

    expected_hinge = 2 / 3 + SQRT2 / 12
    assert loss.hinge == pytest.approx(expected_hinge, abs=ATOL)
    assert loss.value == pytest.approx(expected_hinge + 0.13125 + 0.16, abs=ATOL)
    expected_residuals = [SQRT2 / 4, -SQRT2 / 4, 2 + SQRT2 / 4, 2 - SQRT2 / 4]
    np.testing.assert_allclose(loss.residuals, expected_residuals, atol=ATOL)


def test_loss_gradient_by_hand():
    # dL/d(diff_j) = -omega_j [residual_j > 0] / 4.5 = [-2/9, 0, -2/9, -1/9].
    # Per clip (won minus lost): g0 = -1/9 + 2/9 = 1/9, g1 = -2/9 + 2/9 = 0,
    # g2 = 0 + 1/9 = 1/9, g3 = -2/9 - 0 = -2/9.
    # dL/dalpha = g . z(s) + 2 (0.1)(1)       = -1/9 + 0.2          = 0.088889
    # dL/dbeta  = g . z(w.e) + 2 (0.1)(0.5)   = (1 + 1 + 2)/9 + 0.1 = 0.544444
    # dL/dgamma = -g . z(P) + 2 (0.1)(0.25)   = 3 sqrt2/9 + 0.05    = 0.521405
    # dL/dw: q = beta g = [1/18, 0, 1/18, -1/9], q . z = 2/9,
    #   q - (q . z) z / 4 = q - z/18 = [0, 1/18, 0, -1/18]; centred embeddings
    #   C1 = (0.5, -1.0), C3 = (-1.1, 0.2), so C^T (...) = (C1 - C3)/18 = (1.6, -1.2)/18;
    #   divided by std 0.5: (1.6, -1.2)/9 (orthogonal to w, as scale invariance demands);
    #   plus the pull 2 (0.2)(w - w_all) = 0.4 (-0.4, 0.8) = (-0.16, 0.32)
    #   = (0.177778 - 0.16, -0.133333 + 0.32) = (0.017778, 0.186667).
    inputs, pairs = hand_case()
    loss = taste_loss(HAND["alpha"], HAND["beta"], HAND["gamma"], HAND["w"], inputs, pairs, **HYPER)

    assert loss.grad_alpha == pytest.approx(-1 / 9 + 0.2, abs=ATOL)
    assert loss.grad_beta == pytest.approx(4 / 9 + 0.1, abs=ATOL)
    assert loss.grad_gamma == pytest.approx(3 * SQRT2 / 9 + 0.05, abs=ATOL)
    np.testing.assert_allclose(loss.grad_w, [1.6 / 9 - 0.16, -1.2 / 9 + 0.32], atol=ATOL)


def test_declared_mode_drops_weight_penalty():
    # Same point with declared weights: no lambda_theta term in the value or
    # the partial derivatives, so dL/dalpha = -1/9 and the value loses 0.13125.
    inputs, pairs = hand_case()
    loss = taste_loss(
        HAND["alpha"], HAND["beta"], HAND["gamma"], HAND["w"], inputs, pairs, weights_mode="declared", **HYPER
    )

    assert loss.value == pytest.approx(2 / 3 + SQRT2 / 12 + 0.16, abs=ATOL)
    assert loss.grad_alpha == pytest.approx(-1 / 9, abs=ATOL)


def random_case(seed, n_clips=12, dim=5, n_pairs=40):
    rng = np.random.default_rng(seed)
    embeddings = rng.standard_normal((n_clips, dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    semantic = rng.uniform(0.1, 0.4, n_clips)
    semantic[:3] = np.nan
    is_still = np.zeros(n_clips, dtype=bool)
    is_still[-2:] = True
    incoherence = rng.uniform(0.0, 1.0, (n_clips, 2))
    inputs = TasteInputs(semantic, embeddings, incoherence, is_still)
    first = rng.integers(0, n_clips, n_pairs)
    second = (first + rng.integers(1, n_clips, n_pairs)) % n_clips
    pairs = Pairs(first, second, rng.uniform(0.2, 1.0, n_pairs))
    return inputs, pairs, rng


def central_difference(function, x, step=1e-6):
    x = np.asarray(x, dtype=np.float64)
    gradient = np.empty_like(x)
    for k in range(x.size):
        up, down = x.copy(), x.copy()
        up[k] += step
        down[k] -= step
        gradient[k] = (function(up) - function(down)) / (2 * step)
    return gradient


# A finite difference across a kink of the hinge is meaningless, so every test
# point must keep all residuals at least this far from 0. Steps of 1e-6 in
# parameters of order 1 move a residual by far less.
KINK_DISTANCE = 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weights_mode", ["learned", "declared"])
def test_loss_gradient_matches_finite_differences(seed, weights_mode):
    inputs, pairs, rng = random_case(seed)
    w_all = rng.standard_normal(inputs.dim)
    hyper = {"margin": 0.7, "lambda_theta": 0.05, "lambda_w": 0.3, "w_all": w_all, "weights_mode": weights_mode}
    point = np.concatenate([rng.uniform(0.2, 1.5, 3), rng.standard_normal(inputs.dim)])

    def value(x):
        return taste_loss(x[0], x[1], x[2], x[3:], inputs, pairs, **hyper).value

    loss = taste_loss(point[0], point[1], point[2], point[3:], inputs, pairs, **hyper)
    assert np.min(np.abs(loss.residuals)) > KINK_DISTANCE

    analytic = np.concatenate([[loss.grad_alpha, loss.grad_beta, loss.grad_gamma], loss.grad_w])
    np.testing.assert_allclose(analytic, central_difference(value, point), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("smoothing", [0.05, 0.5])
def test_smoothed_loss_gradient_matches_finite_differences(smoothing):
    """The smoothed hinge is differentiable everywhere, kinks of the true hinge included."""
    inputs, pairs, rng = random_case(3)
    hyper = {"lambda_theta": 0.05, "lambda_w": 0.3, "w_all": rng.standard_normal(inputs.dim), "smoothing": smoothing}
    point = np.concatenate([rng.uniform(0.2, 1.5, 3), rng.standard_normal(inputs.dim)])

    def value(x):
        return taste_loss(x[0], x[1], x[2], x[3:], inputs, pairs, **hyper).value

    loss = taste_loss(point[0], point[1], point[2], point[3:], inputs, pairs, **hyper)
    # Residuals must avoid the two joins of the smoothed pieces, at 0 and at h.
    assert np.min(np.abs(loss.residuals)) > KINK_DISTANCE
    assert np.min(np.abs(loss.residuals - smoothing)) > KINK_DISTANCE
    analytic = np.concatenate([[loss.grad_alpha, loss.grad_beta, loss.grad_gamma], loss.grad_w])
    np.testing.assert_allclose(analytic, central_difference(value, point), rtol=1e-6, atol=1e-7)


def test_smoothed_hinge_stays_within_half_width():
    """0 <= hinge - smoothed hinge <= h / 2, the bound the solver's accuracy rests on."""
    inputs, pairs, rng = random_case(4)
    point = rng.uniform(0.2, 1.5, 3)
    w = rng.standard_normal(inputs.dim)
    exact = taste_loss(*point, w, inputs, pairs).value
    for smoothing in (1.0, 0.1, 0.01):
        smoothed = taste_loss(*point, w, inputs, pairs, smoothing=smoothing).value
        assert 0.0 <= exact - smoothed <= smoothing / 2 + 1e-12


@pytest.mark.parametrize("learned", [True, False])
def test_solver_objective_gradient_matches_finite_differences(learned):
    """The fit's own parametrisation (alpha, beta, gamma, whitened y) has a correct gradient."""
    inputs, pairs, rng = random_case(5, n_clips=15, dim=6)
    w_all = rng.standard_normal(inputs.dim)
    w_all /= np.linalg.norm(w_all)
    fixed = _fixed_terms(inputs)
    whitening = _whiten(inputs.embeddings)
    problem = _Problem(
        semantic_z=fixed.semantic_z, incoherence_z=fixed.incoherence_z, whitening=whitening, pairs=pairs,
        norm_weights=pairs.weights / pairs.weights.sum(), margin=1.0, lambda_theta=0.05, lambda_w=0.3,
        w_all=w_all, learned=learned, declared=(0.8, 1.2, 0.4),
    )
    y = rng.standard_normal(whitening.rank)
    point = np.concatenate([[0.7, 1.1, 0.3], y]) if learned else y
    for smoothing in (0.0, 0.3):
        value, analytic = problem.objective(point, smoothing)
        numeric = central_difference(lambda x: problem.objective(x, smoothing)[0], point)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


def test_solver_objective_equals_taste_loss():
    """The whitened parametrisation gives the same objective as the loss written in w."""
    inputs, pairs, rng = random_case(6, n_clips=15, dim=6)
    w_all = rng.standard_normal(inputs.dim)
    w_all /= np.linalg.norm(w_all)
    fixed = _fixed_terms(inputs)
    whitening = _whiten(inputs.embeddings)
    problem = _Problem(
        semantic_z=fixed.semantic_z, incoherence_z=fixed.incoherence_z, whitening=whitening, pairs=pairs,
        norm_weights=pairs.weights / pairs.weights.sum(), margin=1.0, lambda_theta=0.05, lambda_w=0.3,
        w_all=w_all, learned=True, declared=None,
    )
    y = rng.standard_normal(whitening.rank)
    value, _ = problem.objective(np.concatenate([[0.7, 1.1, 0.3], y]), 0.0)
    loss = taste_loss(
        0.7, 1.1, 0.3, whitening.direction(y), inputs, pairs, lambda_theta=0.05, lambda_w=0.3, w_all=w_all
    )
    assert value == pytest.approx(loss.value, abs=1e-10)
