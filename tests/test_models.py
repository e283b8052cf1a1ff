"""Database constraints that must hold whatever the code above them does."""

import pytest
from django.db import IntegrityError, transaction

from comparisons.models import Clip, Comparison, Judgment
from tests.factories import make_clip, make_cohort, make_rater

pytestmark = pytest.mark.django_db


def test_comparison_rejects_same_clip_twice():
    cohort = make_cohort()
    rater = make_rater(cohort)
    clip = cohort.pool.clips.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(cohort=cohort, rater=rater, left=clip, right=clip)


def test_judgment_is_one_per_comparison():
    cohort = make_cohort()
    rater = make_rater(cohort)
    left, right = cohort.pool.clips.all()[:2]
    comparison = Comparison.objects.create(cohort=cohort, rater=rater, left=left, right=right)
    Judgment.objects.create(comparison=comparison, choice="left", server_ms=2000)
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(comparison=comparison, choice="right", server_ms=2100)
    assert Judgment.objects.get(comparison=comparison).choice == "left"


def test_clip_sha256_is_unique():
    clip = make_clip()
    with pytest.raises(IntegrityError), transaction.atomic():
        Clip.objects.create(sha256=clip.sha256, kind="image", original_name="copy.png")
