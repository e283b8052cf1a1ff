"""Every taste model version of a cohort as JSON: weights, head, standardisation and metrics."""

from django.utils import timezone

from comparisons.exports.options import ExportError, format_time
from comparisons.models import Cohort
from scoring.models import TasteModel

TASTE_MODEL_SCHEMA_VERSION = "1"


def float32_list(array):
    """Return float32 values as the shortest decimals that read back to the same float32."""
    return [float(str(value)) for value in array]


def taste_model_entry(model):
    """Return one taste model version as JSON-ready values."""
    w = model.w
    return {
        "id": model.id,
        "version": model.version,
        "backbone": model.backbone,
        "status": model.status,
        "failure_reason": model.failure_reason,
        "is_active": model.is_active,
        "weights_mode": model.weights_mode,
        "weights": {"alpha": model.alpha, "beta": model.beta, "gamma": model.gamma},
        "head": {"dim": model.head_dim, "w": float32_list(w) if w is not None else None},
        "standardisation": model.standardisation,
        "margin": model.margin,
        "half_life_days": model.half_life_days,
        "window": {
            "start": format_time(model.window_start),
            "end": format_time(model.window_end),
            "judgments": model.n_judgments,
            "high_water_judgment_id": model.high_water_judgment_id,
        },
        "metrics": model.metrics,
        "started_at": format_time(model.started_at),
        "finished_at": format_time(model.finished_at),
    }


def cohort_taste_models(cohort):
    """Return a cohort's definition and all its taste model versions, newest first per backbone."""
    models = TasteModel.objects.filter(cohort=cohort).order_by("backbone", "-version")
    return {
        "cohort": cohort.slug,
        "name": cohort.name,
        "weights_mode": cohort.weights_mode,
        "declared_weights": (
            {"alpha": cohort.alpha, "beta": cohort.beta, "gamma": cohort.gamma}
            if cohort.weights_mode == Cohort.WeightsMode.DECLARED else None
        ),
        "versions": [taste_model_entry(model) for model in models],
    }


def taste_models_document(slugs):
    """Return the JSON document for the cohorts named by ``slugs``.

    Raises
    ------
    ExportError
        When no slug is given or a slug names no cohort.
    """
    slugs = list(dict.fromkeys(slugs))
    if not slugs:
        raise ExportError("No cohort given: name at least one cohort by its slug.")
    by_slug = {cohort.slug: cohort for cohort in Cohort.objects.filter(slug__in=slugs)}
    unknown = [slug for slug in slugs if slug not in by_slug]
    if unknown:
        known = list(Cohort.objects.order_by("slug").values_list("slug", flat=True)[:30])
        raise ExportError(
            f"Unknown cohort {', '.join(repr(slug) for slug in unknown)}. "
            f"Known cohorts: {', '.join(known) if known else 'none yet'}."
        )
    return {
        "schema_version": TASTE_MODEL_SCHEMA_VERSION,
        "generated_at": format_time(timezone.now()),
        "taste_function": (
            "T(x) = alpha * z(S_semantic) + beta * z(w . e(x)) - gamma * z(P_incoherence); z uses the "
            "mean and standard deviation stored in standardisation."
        ),
        "cohorts": [cohort_taste_models(by_slug[slug]) for slug in slugs],
    }
