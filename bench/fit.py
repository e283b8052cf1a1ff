"""Time the taste fit's solver against scikit-learn's LinearSVC on the same objective.

Both solvers minimise, over theta, the reduced taste objective (learned
weights, no pull towards the crowd, no decay, so every judgment weighs 1)::

    F(theta) = sum_j w_j max(0, 1 - x_j . theta) / sum_j w_j + lam * ||theta||**2

where ``x_j`` is the feature difference (preferred minus other) of judgment j.
This is exactly the taste fit's convex stage: with learned weights and no
pull, ``scoring.taste.fit_taste`` solves this objective with ``x_j`` the
difference of the whitened per-clip features ``[z(s), g, -z(P)]``, through the
same solver that ``scoring.taste.fit_linear_hinge`` exposes and this script times.

Matching C to lam. LinearSVC(loss="hinge", fit_intercept=False) minimises::

    G(theta) = 1/2 ||theta||**2 + C * sum_j s_j max(0, 1 - y_j x'_j . theta)

with sample weights ``s_j``. Give it ``x'_j = y_j x_j`` with labels ``y_j = +1``
and ``-1`` alternating (liblinear needs two classes; the hinge term is
unchanged because ``y_j x'_j = x_j``) and ``s_j = w_j``. Then::

    G = 1/(2 lam) * [lam ||theta||**2 + 2 lam C * sum_j w_j hinge_j]

and with ``C = 1 / (2 lam sum_j w_j)`` the bracket is F, so G = F / (2 lam):
same minimiser. Both solutions are scored with the same function,
``scoring.taste.linear_hinge_objective``.

Data: ``--pool`` clips with standard-normal (whitened) features of ``--dims``
dimensions, random pairs, Bradley-Terry outcomes from a planted direction. Sizes
grow until the next one would not fit in memory or in the time budget.

Usage::

    .venv/bin/python bench/fit.py [--sizes 10000 100000 1000000] [--dims 512]
        [--threads 1] [--budget-seconds 3600] [--warm-gib 16]
"""

import argparse
import os
import sys
import time

# BLAS thread counts must be set before numpy is imported.
_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                     help="numbers of judgments to try, smallest first")
_parser.add_argument("--dims", type=int, default=512, help="feature dimension")
_parser.add_argument("--pool", type=int, default=20_000, help="clips in the simulated pool")
_parser.add_argument("--lambda-theta", type=float, default=1e-2, help="penalty lam on ||theta||^2")
_parser.add_argument("--threads", type=int, default=1,
                     help="BLAS threads; liblinear is single-threaded, so 1 compares like with like")
_parser.add_argument("--repeats", type=int, default=3,
                     help="runs per solver at sizes up to 100,000 (the median is reported); 1 above")
_parser.add_argument("--budget-seconds", type=float, default=3600.0,
                     help="stop before a size whose projected time would exceed what is left")
_parser.add_argument("--warm-gib", type=float, default=16.0,
                     help="GiB of RAM to touch once before timing (capped at what is free minus 4 GiB)")
_parser.add_argument("--seed", type=int, default=0)
ARGS = _parser.parse_args()
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import warnings  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import expit  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from scoring.taste import fit_linear_hinge, linear_hinge_objective  # noqa: E402

GIB = 1 << 30

# Peak bytes per matrix element: the float32 differences (4), LinearSVC's
# float64 copy (8) and liblinear's 16-byte (index, value) node per entry (16).
# The fit here needs 4 + 8, which is less.
BYTES_PER_ELEMENT = 4 + 8 + 16


def available_bytes():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable not found in /proc/meminfo")


def warm_ram(gib):
    """Touch memory once: a fresh VM's first write to each page is about 15 times slower."""
    gib = min(gib, (available_bytes() - 4 * GIB) / GIB)
    started = time.perf_counter()
    blocks = [np.ones(GIB, np.uint8) for _ in range(int(gib))]
    del blocks
    return int(gib), time.perf_counter() - started


def make_differences(n_pairs, dims, pool, rng):
    features = rng.standard_normal((pool, dims), dtype=np.float32)
    direction = rng.standard_normal(dims)
    direction /= np.linalg.norm(direction)
    first = rng.integers(0, pool, n_pairs)
    second = (first + rng.integers(1, pool, n_pairs)) % pool
    differences = np.empty((n_pairs, dims), dtype=np.float32)
    for start in range(0, n_pairs, 65536):
        stop = start + 65536
        block = features[first[start:stop]] - features[second[start:stop]]
        # Scores 2 * x . direction have a standard deviation of about 2.8:
        # a realistic mix of easy and close pairs.
        first_wins = rng.random(block.shape[0]) < expit(2.0 * (block @ direction))
        block[~first_wins] *= -1
        differences[start:stop] = block
    return differences


def time_ours(differences, lambda_theta):
    started = time.perf_counter()
    fit = fit_linear_hinge(differences, margin=1.0, lambda_theta=lambda_theta)
    return time.perf_counter() - started, fit.theta, f"{fit.n_iter} it, converged {fit.converged}"


def time_linear_svc(differences, lambda_theta):
    n_pairs = differences.shape[0]
    weights = np.ones(n_pairs)
    labels = np.where(np.arange(n_pairs) % 2 == 0, 1.0, -1.0)
    c = 1.0 / (2.0 * lambda_theta * weights.sum())
    differences[1::2] *= -1  # in place, undone below, to spare a copy
    try:
        model = LinearSVC(loss="hinge", fit_intercept=False, C=c, dual=True, max_iter=100_000)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            started = time.perf_counter()
            model.fit(differences, labels, sample_weight=weights)
            elapsed = time.perf_counter() - started
    finally:
        differences[1::2] *= -1
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return elapsed, model.coef_.ravel().copy(), f"{int(model.n_iter_)} it, converged {converged}"


def median_run(function, repeats, *args):
    runs = [function(*args) for _ in range(repeats)]
    runs.sort(key=lambda run: run[0])
    return runs[len(runs) // 2]


def main():
    print(f"bench/fit.py: dims {ARGS.dims}, pool {ARGS.pool}, lambda_theta {ARGS.lambda_theta}, "
          f"BLAS threads {ARGS.threads}, cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    if ARGS.warm_gib > 0:
        touched, seconds = warm_ram(ARGS.warm_gib)
        print(f"warmed {touched} GiB of RAM in {seconds:.1f} s")
    print(f"{'pairs':>9} {'ours s':>9} {'svc s':>9} {'ratio':>7} {'ours objective':>16} "
          f"{'svc objective':>16} {'ours - svc':>11}  ours / svc")

    budget_end = time.perf_counter() + ARGS.budget_seconds
    previous = None  # (pairs, seconds both solvers took per repeat)
    reached, reason = None, "all sizes done"
    rng = np.random.default_rng(ARGS.seed)
    for n_pairs in ARGS.sizes:
        needed = n_pairs * ARGS.dims * BYTES_PER_ELEMENT
        if needed > 0.85 * available_bytes():
            reason = (f"memory: {n_pairs} pairs need about {needed / GIB:.1f} GiB at the peak, "
                      f"{available_bytes() / GIB:.1f} GiB available")
            break
        repeats = ARGS.repeats if n_pairs <= 100_000 else 1
        if previous is not None:
            projected = previous[1] * n_pairs / previous[0] * repeats
            left = budget_end - time.perf_counter()
            if projected > left:
                reason = (f"time budget: {n_pairs} pairs projected at {projected:.0f} s, "
                          f"{left:.0f} s of {ARGS.budget_seconds:.0f} s left")
                break

        differences = make_differences(n_pairs, ARGS.dims, ARGS.pool, rng)
        with threadpool_limits(limits=ARGS.threads):
            ours_s, ours_theta, ours_note = median_run(time_ours, repeats, differences, ARGS.lambda_theta)
            svc_s, svc_theta, svc_note = median_run(time_linear_svc, repeats, differences, ARGS.lambda_theta)
            ours_objective = linear_hinge_objective(ours_theta, differences, lambda_theta=ARGS.lambda_theta)
            svc_objective = linear_hinge_objective(svc_theta, differences, lambda_theta=ARGS.lambda_theta)
        print(f"{n_pairs:>9} {ours_s:>9.2f} {svc_s:>9.2f} {ours_s / svc_s:>7.2f} {ours_objective:>16.10f} "
              f"{svc_objective:>16.10f} {ours_objective - svc_objective:>11.2e}  {ours_note} / {svc_note}",
              flush=True)
        previous = (n_pairs, ours_s + svc_s)
        reached = n_pairs
        del differences

    print(f"largest size reached: {reached} pairs x {ARGS.dims} dims; stopped: {reason}; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
