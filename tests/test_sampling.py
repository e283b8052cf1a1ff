"""The uniform pair sampler: pairing rules, no repeats, exhaustion and uniformity."""

import itertools
import random
from collections import Counter

import pytest
from django.core.exceptions import ImproperlyConfigured

from comparisons import sampling
from comparisons.models import Clip, Comparison, Pool, Prompt
from comparisons.sampling import Exhausted, Pair, draw_pair, get_sampler, sample_uniform
from tests.factories import make_cohort, make_rater

pytestmark = pytest.mark.django_db


def bulk_clips(pool, count, kind=Clip.Kind.IMAGE, status=Clip.Status.READY, prompt=None, start=0):
    """Create ``count`` clip rows without media files, which the sampler never opens."""
    clips = Clip.objects.bulk_create(
        Clip(
            sha256=f"{kind}-{status}-{prompt.pk if prompt else 0}-{start + i}-{pool.pk}".ljust(64, "0"),
            kind=kind, original_name=f"clip{start + i}", status=status, prompt=prompt,
        )
        for i in range(count)
    )
    pool.clips.add(*clips)
    return sorted(clip.pk for clip in clips)


def empty_cohort(**fields):
    return make_cohort(pool=Pool.objects.create(name=f"pool-{random.random()}"), **fields)


def serve(cohort, rater, pairs):
    Comparison.objects.bulk_create(
        Comparison(cohort=cohort, rater=rater, left_id=a, right_id=b) for a, b in pairs
    )


def draws(cohort, rater, count, seed=0):
    rng = random.Random(seed)
    return [sample_uniform(cohort, rater, rng) for _ in range(count)]


def unordered(draw):
    return frozenset((draw.first_id, draw.second_id))


def test_pairs_are_two_clips_of_one_kind():
    cohort = empty_cohort()
    images = set(bulk_clips(cohort.pool, 3, Clip.Kind.IMAGE))
    videos = set(bulk_clips(cohort.pool, 3, Clip.Kind.VIDEO))
    rater = make_rater(cohort)

    results = draws(cohort, rater, 200)

    kinds = Counter()
    for draw in results:
        assert isinstance(draw, Pair)
        assert draw.first_id != draw.second_id
        assert draw.reason == Comparison.Reason.RANDOM
        pair = {draw.first_id, draw.second_id}
        assert pair <= images or pair <= videos
        kinds["image" if pair <= images else "video"] += 1
    assert kinds["image"] > 0
    assert kinds["video"] > 0


def test_only_ready_clips_of_the_pool_are_drawn():
    cohort = empty_cohort()
    ready = set(bulk_clips(cohort.pool, 3))
    bulk_clips(cohort.pool, 3, status=Clip.Status.PENDING, start=10)
    bulk_clips(cohort.pool, 3, status=Clip.Status.FAILED, start=20)
    bulk_clips(Pool.objects.create(name="elsewhere"), 5, start=30)
    rater = make_rater(cohort)

    for draw in draws(cohort, rater, 100):
        assert {draw.first_id, draw.second_id} <= ready


def test_same_prompt_pairs_only_clips_of_one_prompt():
    cohort = empty_cohort(same_prompt=True)
    first, second = Prompt.objects.create(text="a fox"), Prompt.objects.create(text="a boat")
    by_prompt = {
        first.pk: set(bulk_clips(cohort.pool, 3, prompt=first)),
        second.pk: set(bulk_clips(cohort.pool, 2, prompt=second, start=10)),
    }
    without_prompt = set(bulk_clips(cohort.pool, 4, start=20))
    rater = make_rater(cohort)

    seen = set()
    for draw in draws(cohort, rater, 200):
        pair = {draw.first_id, draw.second_id}
        assert not pair & without_prompt
        matching = [prompt for prompt, ids in by_prompt.items() if pair <= ids]
        assert len(matching) == 1
        seen.add(matching[0])
    assert seen == set(by_prompt)


def test_without_same_prompt_pairs_cross_prompts():
    cohort = empty_cohort(same_prompt=False)
    first, second = Prompt.objects.create(text="a fox"), Prompt.objects.create(text="a boat")
    fox = set(bulk_clips(cohort.pool, 2, prompt=first))
    boat = set(bulk_clips(cohort.pool, 2, prompt=second, start=10))
    rater = make_rater(cohort)

    crossing = [d for d in draws(cohort, rater, 100) if {d.first_id, d.second_id} & fox and {d.first_id, d.second_id} & boat]
    assert crossing


def test_served_pairs_not_redrawn_in_either_order():
    cohort = empty_cohort()
    a, b, c, d = bulk_clips(cohort.pool, 4)
    rater = make_rater(cohort)
    # Five of the six pairs, some stored right-to-left.
    serve(cohort, rater, [(a, b), (c, a), (a, d), (d, b), (b, c)])

    for seed in range(50):
        draw = sample_uniform(cohort, rater, random.Random(seed))
        assert unordered(draw) == {c, d}


def test_other_raters_and_cohorts_do_not_block_pairs():
    cohort = empty_cohort()
    a, b, c = bulk_clips(cohort.pool, 3)
    rater, other_rater = make_rater(cohort), make_rater(cohort)
    other_cohort = make_cohort(pool=cohort.pool)
    serve(cohort, other_rater, [(a, b), (a, c), (b, c)])
    serve(other_cohort, rater, [(a, b), (a, c), (b, c)])

    results = {unordered(d) for d in draws(cohort, rater, 100)}

    assert results == {frozenset(p) for p in [(a, b), (a, c), (b, c)]}


def test_every_pair_served_is_detected_exactly():
    cohort = empty_cohort()
    ids = bulk_clips(cohort.pool, 4)
    rater = make_rater(cohort)
    serve(cohort, rater, list(itertools.combinations(ids, 2)))

    assert sample_uniform(cohort, rater, random.Random(0)) == Exhausted(Exhausted.ALL_JUDGED)


def test_pairs_of_unready_clips_no_longer_count():
    cohort = empty_cohort()
    a, b, c = bulk_clips(cohort.pool, 3)
    rater = make_rater(cohort)
    serve(cohort, rater, [(a, b), (a, c)])
    Clip.objects.filter(pk=a).update(status=Clip.Status.FAILED)
    newcomer = bulk_clips(cohort.pool, 1, start=10)[0]

    results = {unordered(d) for d in draws(cohort, rater, 100)}

    assert results == {frozenset((b, c)), frozenset((b, newcomer)), frozenset((c, newcomer))}


@pytest.mark.parametrize(
    "kinds",
    [[], [Clip.Kind.IMAGE], [Clip.Kind.IMAGE, Clip.Kind.VIDEO]],
    ids=["empty", "one-clip", "one-of-each-kind"],
)
def test_fewer_than_two_pairable_clips(kinds):
    cohort = empty_cohort()
    for index, kind in enumerate(kinds):
        bulk_clips(cohort.pool, 1, kind=kind, start=index)
    bulk_clips(cohort.pool, 2, status=Clip.Status.PENDING, start=10)
    rater = make_rater(cohort)

    assert sample_uniform(cohort, rater, random.Random(0)) == Exhausted(Exhausted.NOT_ENOUGH_CLIPS)


def test_same_prompt_without_prompts_has_no_pairs():
    cohort = empty_cohort(same_prompt=True)
    bulk_clips(cohort.pool, 5)
    rater = make_rater(cohort)

    assert sample_uniform(cohort, rater, random.Random(0)) == Exhausted(Exhausted.NOT_ENOUGH_CLIPS)


def test_draws_are_uniform_over_pairs_across_groups():
    """A group of 3 images (3 pairs) and one of 2 videos (1 pair): each pair gets a quarter."""
    cohort = empty_cohort()
    bulk_clips(cohort.pool, 3, Clip.Kind.IMAGE)
    bulk_clips(cohort.pool, 2, Clip.Kind.VIDEO)
    rater = make_rater(cohort)

    counts = Counter(unordered(d) for d in draws(cohort, rater, 4000, seed=1))

    assert len(counts) == 4
    for pair, count in counts.items():
        # Expected 1000 each, standard deviation 27. Choosing the kind first
        # and then a pair would give the video pair 2000.
        assert 850 < count < 1150, (pair, count)


def test_exact_draw_is_uniform_over_remaining_pairs(monkeypatch):
    cohort = empty_cohort()
    a, b, c, d, e, f = bulk_clips(cohort.pool, 6)
    rater = make_rater(cohort)
    remaining = {frozenset((a, b)), frozenset((a, c)), frozenset((d, e))}
    serve(cohort, rater, [p for p in itertools.combinations([a, b, c, d, e, f], 2) if frozenset(p) not in remaining])
    # No rejection attempts: every draw goes through the exact fallback.
    monkeypatch.setattr(sampling, "REJECTION_ATTEMPTS", 0)

    counts = Counter(unordered(draw) for draw in draws(cohort, rater, 3000, seed=2))

    assert set(counts) == remaining
    for pair, count in counts.items():
        # Expected 1000 each, standard deviation 26. Drawing a clip uniformly
        # and then a partner would give 900, 900 and 1200.
        assert 850 < count < 1150, (pair, count)


def test_exclude_avoids_the_given_pairs():
    cohort = empty_cohort()
    a, b, c = bulk_clips(cohort.pool, 3)
    rater = make_rater(cohort)

    results = {unordered(draw_pair(cohort, rater, random.Random(seed), exclude=[(b, a), (a, c)])) for seed in range(30)}

    assert results == {frozenset((b, c))}
    assert draw_pair(cohort, rater, random.Random(0), exclude=[(a, b), (a, c), (c, b)]) == Exhausted(
        Exhausted.ALL_JUDGED
    )


def test_seeded_generator_repeats_the_draw():
    cohort = empty_cohort()
    bulk_clips(cohort.pool, 50)
    rater = make_rater(cohort)

    assert draws(cohort, rater, 20, seed=5) == draws(cohort, rater, 20, seed=5)
    assert draws(cohort, rater, 20, seed=5) != draws(cohort, rater, 20, seed=6)


def test_large_pool_takes_two_queries(django_assert_num_queries):
    cohort = empty_cohort()
    images = bulk_clips(cohort.pool, 2000, Clip.Kind.IMAGE)
    bulk_clips(cohort.pool, 500, Clip.Kind.VIDEO, start=5000)
    rater = make_rater(cohort)
    serve(cohort, rater, list(zip(images[::2], images[1::2])))

    with django_assert_num_queries(2):
        draw = sample_uniform(cohort, rater, random.Random(3))

    assert isinstance(draw, Pair)


def test_large_group_with_two_pairs_left_finds_both():
    cohort = empty_cohort()
    ids = bulk_clips(cohort.pool, 60)
    rater = make_rater(cohort)
    all_pairs = list(itertools.combinations(ids, 2))
    left_over = {frozenset(all_pairs[100]), frozenset(all_pairs[1500])}
    serve(cohort, rater, [p for p in all_pairs if frozenset(p) not in left_over])

    results = {unordered(d) for d in draws(cohort, rater, 40, seed=4)}

    assert results == left_over


def test_unknown_sampler_names_the_registered_ones():
    cohort = empty_cohort()
    cohort.sampler = "active"

    with pytest.raises(ImproperlyConfigured, match="'active'.*uniform"):
        draw_pair(cohort, make_rater(cohort))
    assert get_sampler("uniform") is sample_uniform
