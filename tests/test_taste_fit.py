"""Fitting the taste function: weights, determinism, the pull towards the crowd, inputs."""

import json

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from scoring.metrics import pairwise_accuracy
from scoring.simulation import plant_taste, simulate_judgments
from scoring.taste import (
    Pairs,
    TasteInputs,
    _whiten,
    decay_weights,
    fit_all_judgments,
    fit_linear_hinge,
    fit_taste,
    linear_hinge_objective,
    score_clips,
    standardise_terms,
    taste_loss,
)


@pytest.fixture(scope="module")
def planted():
    taste = plant_taste(60, 12, 3, embedding_noise=0.02, seed=3)
    return taste, simulate_judgments(taste.true_scores, 800, seed=4)


def unit_vector(dim, seed):
    vector = np.random.default_rng(seed).standard_normal(dim)
    return vector / np.linalg.norm(vector)


def test_declared_weights_stay_declared(planted):
    taste, pairs = planted
    fitted = fit_taste(taste.inputs, pairs, weights_mode="declared", declared={"alpha": 0.7, "beta": 1.3, "gamma": 0.2})

    assert (fitted.alpha, fitted.beta, fitted.gamma) == (0.7, 1.3, 0.2)
    assert np.linalg.norm(fitted.w) == pytest.approx(1.0, abs=1e-12)


def test_learned_weights_are_non_negative():
    """Raters who prefer incoherent clips push gamma to its bound 0, not below."""
    taste = plant_taste(60, 12, 3, alpha=1.0, beta=1.0, gamma=0.0, seed=5)
    terms, _ = standardise_terms(taste.inputs, taste.direction)
    # The raters' taste rewards incoherence: T* = z(s) + z(w.e) + 2 z(P).
    pairs = simulate_judgments(taste.true_scores + 2.0 * terms.incoherence_z, 1500, seed=6)
    fitted = fit_taste(taste.inputs, pairs, weights_mode="learned")

    assert fitted.alpha > 0.1
    assert fitted.beta > 0.1
    assert fitted.gamma == 0.0


def test_fit_is_deterministic_for_a_seed(planted):
    taste, pairs = planted
    w_all = unit_vector(taste.inputs.dim, 9)
    first = fit_taste(taste.inputs, pairs, weights_mode="learned", w_all=w_all, seed=7)
    second = fit_taste(taste.inputs, pairs, weights_mode="learned", w_all=w_all, seed=7)

    np.testing.assert_array_equal(first.w, second.w)
    assert (first.alpha, first.beta, first.gamma, first.objective) == (
        second.alpha, second.beta, second.gamma, second.objective
    )


def test_pull_moves_w_towards_w_all(planted):
    taste, pairs = planted
    w_all = unit_vector(taste.inputs.dim, 11)
    distances = []
    for lambda_w in (0.0, 0.03, 0.3, 3.0, 30.0):
        fitted = fit_taste(
            taste.inputs, pairs, weights_mode="declared", declared=(1.0, 2.0, 0.5), lambda_w=lambda_w, w_all=w_all
        )
        distances.append(np.linalg.norm(fitted.w - w_all))

    print("||w - w_all|| for lambda_w 0, 0.03, 0.3, 3, 30:", np.round(distances, 4))
    assert all(later <= earlier + 1e-6 for earlier, later in zip(distances, distances[1:]))
    assert distances[0] > 0.5
    assert distances[-1] < 0.05


def test_fitted_objective_is_the_loss_at_the_solution(planted):
    taste, pairs = planted
    w_all = unit_vector(taste.inputs.dim, 12)
    fitted = fit_taste(taste.inputs, pairs, weights_mode="learned", w_all=w_all, lambda_w=0.2)
    loss = taste_loss(
        fitted.alpha, fitted.beta, fitted.gamma, fitted.w, taste.inputs, pairs, lambda_w=0.2, w_all=w_all
    )

    assert fitted.objective == pytest.approx(loss.value, abs=1e-12)
    assert fitted.converged
    assert fitted.lambda_w == 0.2


def test_scores_reproduce_fit_and_standardise(planted):
    taste, pairs = planted
    fitted = fit_taste(taste.inputs, pairs, weights_mode="learned")
    scored = score_clips(fitted, taste.inputs)

    assert scored.aesthetic_z.mean() == pytest.approx(0.0, abs=1e-9)
    assert scored.aesthetic_z.std() == pytest.approx(1.0, abs=1e-9)
    assert fitted.train_accuracy == pytest.approx(
        pairwise_accuracy(scored.total, pairs.winners, pairs.losers, pairs.weights), abs=1e-12
    )
    missing = np.isnan(taste.inputs.semantic)
    assert fitted.n_missing_semantic == int(missing.sum()) > 0
    assert np.all(np.isnan(scored.semantic_z[missing]))
    json.dumps(fitted.standardisation)


def test_learned_fit_without_pull_reaches_svm_minimum(planted):
    """With no semantic or incoherence term, the fit is a linear SVM on whitened embeddings.

    The minimum of that convex problem does not depend on how it is
    parametrised, so scikit-learn's LinearSVC, given features whitened here
    independently, must reach the same objective.
    """
    taste, pairs = planted
    inputs = TasteInputs(
        np.full(taste.inputs.n_clips, np.nan), taste.inputs.embeddings, np.zeros((taste.inputs.n_clips, 2)),
        np.ones(taste.inputs.n_clips, dtype=bool),
    )
    lambda_theta = 0.01
    fitted = fit_taste(inputs, pairs, weights_mode="learned", lambda_theta=lambda_theta)

    centred = inputs.embeddings - inputs.embeddings.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    keep = singular > 1e-6 * singular[0]
    whitened = centred @ vt[keep].T / (singular[keep] / np.sqrt(inputs.n_clips))
    differences = whitened[pairs.winners] - whitened[pairs.losers]
    signs = np.where(np.arange(pairs.n_pairs) % 2 == 0, 1.0, -1.0)
    svm = LinearSVC(loss="hinge", fit_intercept=False, C=1 / (2 * lambda_theta * pairs.n_pairs), tol=1e-8,
                    max_iter=200_000).fit(differences * signs[:, None], signs)
    svm_objective = linear_hinge_objective(svm.coef_.ravel(), differences, lambda_theta=lambda_theta)

    print("fit objective %.8f, LinearSVC objective %.8f" % (fitted.objective, svm_objective))
    assert fitted.objective == pytest.approx(svm_objective, abs=2e-4)
    assert fitted.objective <= svm_objective + 5e-5


def test_fit_linear_hinge_respects_lower_bounds():
    rng = np.random.default_rng(0)
    differences = rng.standard_normal((300, 4))
    differences[:, 0] = -np.abs(differences[:, 0])  # the first feature argues against every winner
    fitted = fit_linear_hinge(differences, lower_bounds=[0.0, -np.inf, -np.inf, -np.inf])
    free = fit_linear_hinge(differences)

    assert fitted.theta[0] == 0.0
    assert free.theta[0] < 0.0
    assert fitted.objective >= free.objective


def test_all_judgments_model_is_learned_fit_without_pull(planted):
    taste, pairs = planted
    crowd = fit_all_judgments(taste.inputs, pairs)
    plain = fit_taste(taste.inputs, pairs, weights_mode="learned", lambda_w=0.0)

    np.testing.assert_array_equal(crowd.w, plain.w)
    assert crowd.lambda_w == 0.0
    with pytest.raises(ValueError, match="fixes lambda_w"):
        fit_all_judgments(taste.inputs, pairs, lambda_w=0.1)


def test_constant_semantic_term_is_zero_after_z(planted):
    taste, pairs = planted
    inputs = TasteInputs(
        np.full(taste.inputs.n_clips, 0.3), taste.inputs.embeddings, taste.inputs.incoherence, taste.inputs.is_still
    )
    fitted = fit_taste(inputs, pairs, weights_mode="learned")
    scored = score_clips(fitted, inputs)

    assert fitted.standardisation["semantic"]["std"] == 0.0
    np.testing.assert_array_equal(scored.semantic_z, 0.0)
    assert fitted.alpha == pytest.approx(0.0, abs=1e-9)


def test_decay_weights_halve_at_half_life():
    weights = decay_weights([0.0, 30.0, 60.0, 15.0], 30.0, rater_weights=[1.0, 1.0, 1.0, 0.0])

    np.testing.assert_allclose(weights, [1.0, 0.5, 0.25, 0.0])
    assert decay_weights([7.0], 7.0)[0] == 0.5


INVALID_DECAY = [
    ({"ages_days": [-1.0], "half_life_days": 30.0}, "ages_days must be finite and >= 0; got -1.0"),
    ({"ages_days": [1.0], "half_life_days": 0.0}, "half_life_days must be a finite number > 0; got 0.0"),
    ({"ages_days": [1.0], "half_life_days": 3.0, "rater_weights": [-0.5]}, "rater_weights must be finite and >= 0"),
    ({"ages_days": [1.0, 2.0], "half_life_days": 3.0, "rater_weights": [1.0]}, r"one value per judgment \(2\)"),
]


@pytest.mark.parametrize(("kwargs", "message"), INVALID_DECAY)
def test_decay_weights_reject_invalid_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        decay_weights(**kwargs)


def small_inputs(**overrides):
    values = {
        "semantic": [0.2, 0.3, np.nan],
        "embeddings": [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]],
        "incoherence": [[0.1, 1.0], [0.2, 2.0], [0.3, 0.5]],
    }
    values.update(overrides)
    return TasteInputs(**values)


INVALID_INPUTS = [
    ({"semantic": [0.2, 0.3]}, r"semantic must have shape \(3,\) to match embeddings; got \(2,\)"),
    ({"embeddings": [[1.0, 0.0], [np.nan, 1.0], [0.6, 0.8]]}, r"embeddings of clips \[1\] contain NaN"),
    ({"embeddings": [[2.0, 0.0], [0.0, 1.0], [0.6, 0.8]]}, "clip 0 has norm 2"),
    ({"incoherence": [[0.1, 1.0], [0.2, 2.0]]}, r"incoherence must have shape \(3, 2\)"),
    ({"incoherence": [[0.1, 1.0], [0.2, np.inf], [0.3, 0.5]]}, r"incoherence of videos \[1\]"),
    ({"semantic": [0.2, np.inf, 0.1]}, "semantic contains infinity; use NaN"),
    ({"is_still": [True, False]}, "is_still must be a boolean array of shape"),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID_INPUTS)
def test_invalid_inputs_raise_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_inputs(**overrides)


INVALID_PAIRS = [
    (([], []), "No pairs to fit"),
    (([0, 1], [1]), "same length; got 2 and 1"),
    (([0, -1], [1, 2]), "negative index -1"),
    (([0, 1], [1, 1]), "pair 1 compares clip 1 with itself"),
    (([0.5], [1]), "integer clip indices"),
    (([0, 1], [1, 2], [1.0, -2.0]), "pair 1 has weight -2"),
    (([0, 1], [1, 2], [0.0, 0.0]), "All pair weights are 0"),
    (([0, 1], [1, 2], [1.0, np.nan]), "weights contain NaN"),
]


@pytest.mark.parametrize(("args", "message"), INVALID_PAIRS)
def test_invalid_pairs_raise_naming_the_value(args, message):
    with pytest.raises(ValueError, match=message):
        Pairs(*args)


def test_ties_and_skips_are_rejected():
    pairs = Pairs.from_choices([0, 1], [1, 2], ["left", "right"])
    np.testing.assert_array_equal(pairs.winners, [0, 2])
    np.testing.assert_array_equal(pairs.losers, [1, 1])
    with pytest.raises(ValueError, match="choice 1 is 'tie'; only 'left' and 'right' are fitted"):
        Pairs.from_choices([0, 1], [1, 2], ["left", "tie"])


INVALID_FITS = [
    ({"weights_mode": "learned", "margin": 0.0}, "margin must be > 0; got 0.0"),
    ({"weights_mode": "learned", "lambda_theta": -1.0}, "lambda_theta must be >= 0; got -1.0"),
    ({"weights_mode": "sometimes"}, "weights_mode must be one of learned, declared; got 'sometimes'"),
    ({"weights_mode": "declared"}, "weights_mode='declared' needs declared="),
    ({"weights_mode": "declared", "declared": {"alpha": 1.0, "beta": 1.0}}, "declared weights lack gamma"),
    ({"weights_mode": "declared", "declared": (1.0, -1.0, 0.0)}, "declared beta must be a finite number >= 0"),
    ({"weights_mode": "learned", "declared": (1.0, 1.0, 1.0)}, "declared weights were given with weights_mode='learned'"),
    ({"weights_mode": "learned", "w_all": [1.0, 0.0, 0.0]}, r"w_all must have shape \(2,\)"),
    ({"weights_mode": "learned", "w_all": [0.0, 0.0]}, "w_all must be a finite non-zero vector"),
]


@pytest.mark.parametrize(("kwargs", "message"), INVALID_FITS)
def test_invalid_fit_arguments_raise_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_taste(small_inputs(), Pairs([0, 1], [1, 2]), **kwargs)


def test_pair_index_out_of_range_raises():
    with pytest.raises(ValueError, match="pair index 3 is out of range for a pool of 3 clips"):
        fit_taste(small_inputs(), Pairs([0, 3], [1, 2]), weights_mode="learned")


def test_scoring_other_backbone_raises(planted):
    taste, pairs = planted
    fitted = fit_taste(taste.inputs, pairs, weights_mode="learned")
    with pytest.raises(ValueError, match="embedding dimension 2, but the taste model was fitted on 12"):
        score_clips(fitted, small_inputs())


@pytest.mark.parametrize(("n_clips", "dim"), [(40, 8), (15, 64)])
def test_whitened_features_have_identity_covariance(n_clips, dim):
    """Both eigenproblems (covariance when clips >= dim, Gram matrix otherwise) whiten the pool."""
    rng = np.random.default_rng(n_clips)
    embeddings = rng.standard_normal((n_clips, dim))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    whitening = _whiten(embeddings)
    rank = min(n_clips - 1, dim)

    assert whitening.rank == rank
    np.testing.assert_allclose(whitening.features.T @ whitening.features / n_clips, np.eye(rank), atol=1e-9)
    np.testing.assert_allclose(whitening.basis.T @ whitening.basis, np.eye(rank), atol=1e-9)


def test_fit_with_fewer_clips_than_dimensions():
    taste = plant_taste(20, 64, 3, embedding_noise=0.05, seed=8)
    pairs = simulate_judgments(taste.true_scores, 300, seed=9)
    w_all = unit_vector(64, 10)
    fitted = fit_taste(taste.inputs, pairs, weights_mode="learned", w_all=w_all)
    loss = taste_loss(fitted.alpha, fitted.beta, fitted.gamma, fitted.w, taste.inputs, pairs, w_all=w_all)
    scored = score_clips(fitted, taste.inputs)

    assert fitted.converged
    assert fitted.objective == pytest.approx(loss.value, abs=1e-12)
    assert scored.aesthetic_z.std() == pytest.approx(1.0, abs=1e-9)


def test_identical_embeddings_give_no_aesthetic_term():
    n_clips = 6
    embeddings = np.tile([0.6, 0.8], (n_clips, 1))
    inputs = TasteInputs(np.linspace(0.1, 0.3, n_clips), embeddings, np.zeros((n_clips, 2)),
                         np.ones(n_clips, dtype=bool))
    pairs = Pairs([5, 4, 3], [0, 1, 2])
    learned = fit_taste(inputs, pairs, weights_mode="learned", w_all=[0.0, 1.0])
    declared = fit_taste(inputs, pairs, weights_mode="declared", declared=(1.0, 2.0, 0.5))

    assert learned.beta == 0.0
    np.testing.assert_array_equal(learned.w, [0.0, 1.0])
    assert learned.standardisation["aesthetic"]["std"] == 0.0
    assert declared.beta == 2.0
    np.testing.assert_array_equal(score_clips(declared, inputs).aesthetic_z, 0.0)
    assert learned.alpha > 0.0


def test_pairs_subset_keeps_weights():
    pairs = Pairs([0, 1, 2], [1, 2, 0], [0.5, 1.0, 2.0])
    newest = pairs.subset(np.array([1, 2]))

    np.testing.assert_array_equal(newest.winners, [1, 2])
    np.testing.assert_array_equal(newest.losers, [2, 0])
    np.testing.assert_array_equal(newest.weights, [1.0, 2.0])
