"""Pair samplers: which two clips a rater judges next.

A sampler is a function ``sampler(cohort, rater, rng, exclude=(), groups=None)``
that returns a :class:`Pair` of clip ids with the reason it was chosen, or an
:class:`Exhausted` end state when no valid pair is left. ``Cohort.sampler``
names one through :data:`SAMPLERS`, so a smarter sampler (active learning,
gold pairs, repeats) is one more registered function.

Every sampler obeys the same pairing rules. A pair is two different ready
clips of the cohort's pool, of the same kind (video with video, image with
image), and from the same prompt when ``cohort.same_prompt`` is set. It is
never a pair this rater has already been served in this cohort, in either order.
"""

import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from comparisons.models import Clip, Comparison

logger = logging.getLogger(__name__)

# Random draws tried before the exact fallback. With a judged fraction f of the
# valid pairs, all of them miss with probability f ** 32: below 4 % at f = 0.9.
REJECTION_ATTEMPTS = 32


@dataclass(frozen=True)
class Pair:
    """Two clip ids to compare, unordered, and why they were chosen."""

    first_id: int
    second_id: int
    reason: str


@dataclass(frozen=True)
class Exhausted:
    """No pair can be drawn; ``code`` is one of the class constants."""

    NOT_ENOUGH_CLIPS = "not_enough_clips"
    ALL_JUDGED = "all_judged"

    code: str


SAMPLERS = {}


def register_sampler(name):
    """Register a sampler function under ``name`` (a ``Cohort.Sampler`` value)."""

    def decorator(function):
        SAMPLERS[name] = function
        return function

    return decorator


def get_sampler(name):
    """Return the sampler registered as ``name``; raise ImproperlyConfigured if none is."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ImproperlyConfigured(
            "Unknown pair sampler %r; registered samplers: %s. Set the cohort's sampler to one of them."
            % (name, ", ".join(sorted(SAMPLERS)))
        ) from None


def draw_pair(cohort, rater, rng=None, exclude=(), groups=None):
    """Draw the next pair for ``rater`` in ``cohort`` with the cohort's sampler.

    ``exclude`` contains extra ``(id, id)`` pairs to avoid, in any order, such as
    the pair the rater is looking at now. ``groups`` is the result of
    :func:`pairable_groups` when the caller already has it, which saves the
    query when one request draws twice.
    """
    sampler = get_sampler(cohort.sampler)
    return sampler(cohort, rater, rng or random.Random(), exclude=exclude, groups=groups)


def _ordered(a, b):
    return (a, b) if a < b else (b, a)


def pairable_groups(cohort):
    """Return the cohort's ready clip ids in lists that may be paired, each sorted, none shorter than 2."""
    rows = (
        cohort.pool.clips.filter(status=Clip.Status.READY)
        .order_by("id")
        .values_list("id", "kind", "prompt_id")
    )
    groups = defaultdict(list)
    for clip_id, kind, prompt_id in rows:
        if cohort.same_prompt:
            if prompt_id is None:
                continue
            groups[(kind, prompt_id)].append(clip_id)
        else:
            groups[kind].append(clip_id)
    return [ids for ids in groups.values() if len(ids) >= 2]


def _served_pairs(cohort, rater, exclude):
    pairs = {
        _ordered(left, right)
        for left, right in Comparison.objects.filter(cohort=cohort, rater=rater).values_list("left_id", "right_id")
    }
    pairs.update(_ordered(a, b) for a, b in exclude)
    return pairs


@register_sampler("uniform")
def sample_uniform(cohort, rater, rng, exclude=(), groups=None):
    """Draw a pair uniformly among the valid pairs this rater has not been served.

    Two queries whatever the pool size: the ready clips and the rater's served
    pairs. A group of n clips contains n (n - 1) / 2 pairs, so a group is chosen
    with that weight and then two distinct clips in it, which makes every valid
    pair equally likely. Draws that hit a served pair are rejected. After
    :data:`REJECTION_ATTEMPTS` misses, an exact draw over the remaining pairs
    takes O(clips + served pairs) time without listing every pair.
    """
    started = time.monotonic()
    if groups is None:
        groups = pairable_groups(cohort)
    if not groups:
        return Exhausted(Exhausted.NOT_ENOUGH_CLIPS)

    served = _served_pairs(cohort, rater, exclude)
    group_of = {clip_id: index for index, ids in enumerate(groups) for clip_id in ids}
    # Served pairs that are still valid: both clips ready, in the pool, in one group.
    # Clips removed from the pool or no longer ready leave pairs that no longer count.
    served_valid = {
        pair for pair in served
        if pair[0] in group_of and group_of[pair[0]] == group_of.get(pair[1])
    }
    sizes = [len(ids) for ids in groups]
    pair_counts = [math.comb(size, 2) for size in sizes]
    remaining = sum(pair_counts) - len(served_valid)
    if remaining <= 0:
        return Exhausted(Exhausted.ALL_JUDGED)

    for _ in range(REJECTION_ATTEMPTS):
        ids = rng.choices(groups, weights=pair_counts)[0]
        a, b = rng.sample(ids, 2)
        if _ordered(a, b) not in served_valid:
            logger.debug("Drew pair %s-%s by rejection in %.1f ms", a, b, (time.monotonic() - started) * 1000)
            return Pair(a, b, Comparison.Reason.RANDOM)

    a, b = _draw_exact(groups, group_of, served_valid, rng)
    logger.debug(
        "Drew pair %s-%s exactly among %d remaining pairs in %.1f ms",
        a, b, remaining, (time.monotonic() - started) * 1000,
    )
    return Pair(a, b, Comparison.Reason.RANDOM)


def _draw_exact(groups, group_of, served_valid, rng):
    """Draw uniformly among the unserved pairs, which must exist.

    Each clip is weighted by its number of unserved partners, which counts every
    unserved pair twice (once from each end), and then one of its unserved
    partners is drawn uniformly. Each unserved pair {a, b} is therefore drawn
    with probability 2 / (2 * remaining).
    """
    served_degree = defaultdict(int)
    partners = defaultdict(set)
    for a, b in served_valid:
        served_degree[a] += 1
        served_degree[b] += 1
        partners[a].add(b)
        partners[b].add(a)

    clip_ids = []
    weights = []
    for ids in groups:
        for clip_id in ids:
            free = len(ids) - 1 - served_degree[clip_id]
            if free > 0:
                clip_ids.append(clip_id)
                weights.append(free)

    first = rng.choices(clip_ids, weights=weights)[0]
    candidates = [
        clip_id for clip_id in groups[group_of[first]]
        if clip_id != first and clip_id not in partners[first]
    ]
    return first, rng.choice(candidates)
