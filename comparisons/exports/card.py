"""The dataset card written beside every export file, as JSON and as Markdown.

The card is a document about a data file, read by people and programs long
after the export, so it is written in English and not translated like the
pages are.
"""

from collections import Counter

from comparisons.exports.options import format_time
from comparisons.exports.pseudonyms import HEX_DIGITS, PREFIX
from comparisons.exports.schema import SCHEMA_VERSION
from comparisons.models import Judgment

CHOICES = [choice for choice, _label in Judgment.Choice.choices]
# The Markdown card lists this many credits; the JSON card lists them all.
MARKDOWN_CREDITS = 50


def _pairing_rule(cohort):
    if cohort.same_prompt:
        return "Two clips of the same media kind made from the same prompt."
    return "Two clips of the same media kind."


def _taste_model_summary(model):
    if model is None:
        return None
    return {
        "id": model.id,
        "version": model.version,
        "backbone": model.backbone,
        "weights_mode": model.weights_mode,
        "judgments_fitted": model.n_judgments,
        "window_start": format_time(model.window_start),
        "window_end": format_time(model.window_end),
        "finished_at": format_time(model.finished_at),
    }


def _cohort_entry(rows, context):
    cohort = context.cohort
    stats = rows.stats
    counts = {choice: stats.counts.get((cohort.slug, choice), 0) for choice in CHOICES}
    declared = cohort.weights_mode == cohort.WeightsMode.DECLARED
    entry = {
        "slug": cohort.slug,
        "name": cohort.name,
        "pool": cohort.pool.name,
        "question": cohort.question,
        "instructions": cohort.instructions,
        "show_captions": cohort.show_captions,
        "pairing": {
            "rule": _pairing_rule(cohort),
            "same_media_kind": True,
            "same_prompt": cohort.same_prompt,
        },
        "sampler": cohort.sampler,
        "sampler_description": str(cohort.get_sampler_display()),
        "weights_mode": cohort.weights_mode,
        "declared_weights": (
            {"alpha": cohort.alpha, "beta": cohort.beta, "gamma": cohort.gamma} if declared else None
        ),
        "margin": cohort.margin,
        "half_life_days": cohort.half_life_days,
        "counts": {"total": sum(counts.values()), **counts},
        "raters": len(stats.raters.get(cohort.slug, ())),
    }
    if rows.options.features or rows.options.scores:
        entry["backbone"] = context.backbone
    if rows.options.scores:
        entry["taste_model"] = _taste_model_summary(context.taste_model)
    return entry


def _clip_summary(rows):
    infos = rows.clip_infos()
    licences = Counter(info.licence for info in infos)
    credits = Counter(info.credit for info in infos)
    return {
        "count": len(infos),
        "licences": [{"licence": name, "clips": n} for name, n in sorted(licences.items(), key=lambda kv: (-kv[1], kv[0]))],
        "credits": [{"credit": name, "clips": n} for name, n in sorted(credits.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


def build_card(rows, *, file_name, file_format, licence, generated_at):
    """Return the card of an export whose rows have all been read, as JSON-ready values."""
    options = rows.options
    stats = rows.stats
    filters = options.to_json()
    filters.pop("format")
    filters.pop("licence")
    filters["backbone"] = options.backbone or None
    filters["high_water_judgment_id"] = rows.high_water_judgment_id

    contexts = [rows.contexts[cohort.id] for cohort in rows.cohorts]
    backbones = sorted({context.backbone for context in contexts if context.backbone})
    taste_models = [
        {"cohort": context.cohort.slug, **_taste_model_summary(context.taste_model)}
        for context in contexts if context.taste_model is not None
    ]
    notes = []
    if stats.rows == 0:
        notes.append("This export has no rows: no judgment matched the filters.")
    if not options.include_simulated:
        notes.append("Judgments of simulated raters are left out.")
    if options.platform_ids:
        notes.append(
            "This file contains recruitment-platform ids (platform, participant, study and session). "
            "They identify people on that platform: store and share the file accordingly."
        )
    if options.scores and any(context.taste_model is None for context in contexts):
        notes.append("Cohorts without an active taste model for their backbone have empty score columns.")
    if file_format == "csv":
        notes.append(
            "In CSV, a null value and an empty text are both written as an empty field. "
            "The JSON Lines and Parquet formats keep them apart."
        )

    return {
        "title": "Salon comparisons export",
        "file": file_name,
        "format": file_format,
        "schema_version": SCHEMA_VERSION,
        "generated_at": format_time(generated_at),
        "licence": licence,
        "rows": stats.rows,
        "filters": filters,
        "time_range": {
            "requested": {"since": filters["since"], "until": filters["until"]},
            "actual": {
                "first_answered": format_time(stats.first_answered),
                "last_answered": format_time(stats.last_answered),
            },
        },
        "counts": {
            "total": stats.rows,
            **{choice: sum(n for (_slug, c), n in stats.counts.items() if c == choice) for choice in CHOICES},
        },
        "cohorts": [_cohort_entry(rows, context) for context in contexts],
        "backbones": backbones,
        "taste_models": taste_models,
        "pseudonyms": (
            f"Rater ids are '{PREFIX}' followed by the first {HEX_DIGITS} hex digits of HMAC-SHA256 of the "
            "user id, keyed with this deployment's secret: stable across its exports, not reversible."
        ),
        "columns": [
            {"name": column.name, "type": column.kind, "nullable": column.nullable, "description": column.description}
            for column in rows.columns
        ],
        "clips": _clip_summary(rows),
        "notes": notes,
    }


def _cell(value):
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) or "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def render_markdown(card):
    """Return the card as a Markdown document."""
    lines = [f"# {card['title']}: {card['file']}", ""]
    lines += [
        f"- Format: {card['format']}, schema version {card['schema_version']}",
        f"- Generated: {card['generated_at']}",
        f"- Licence: {card['licence'] or 'not stated'}",
        f"- Rows: {card['rows']}",
        f"- Requested range of answer times: {card['time_range']['requested']['since'] or 'start'}"
        f" to {card['time_range']['requested']['until'] or 'now'} (end excluded)",
        f"- Actual answer times: {card['time_range']['actual']['first_answered'] or '-'}"
        f" to {card['time_range']['actual']['last_answered'] or '-'}",
    ]
    if card["backbones"]:
        lines.append(f"- Feature backbones: {', '.join(card['backbones'])}")
    lines.append("")
    for note in card["notes"]:
        lines.append(f"> {note}")
    if card["notes"]:
        lines.append("")

    lines += ["## Filters", ""]
    lines += [f"- {name}: {_cell(value)}" for name, value in card["filters"].items()]
    lines.append("")

    lines += ["## Counts", ""]
    lines += _table(
        ["cohort", "total", *CHOICES, "raters"],
        [[c["slug"], c["counts"]["total"], *(c["counts"][choice] for choice in CHOICES), c["raters"]]
         for c in card["cohorts"]]
        + [["all", card["counts"]["total"], *(card["counts"][choice] for choice in CHOICES), ""]],
    )
    lines.append("")

    lines += ["## Cohorts", ""]
    for cohort in card["cohorts"]:
        weights = cohort["declared_weights"]
        lines += [
            f"### {cohort['name']} ({cohort['slug']})",
            "",
            f"- Question: {cohort['question']}",
            f"- Instructions: {_cell(cohort['instructions'])}",
            f"- Pool: {cohort['pool']}",
            f"- Captions shown: {'yes' if cohort['show_captions'] else 'no'}",
            f"- Pairing: {cohort['pairing']['rule']}",
            f"- Sampler: {cohort['sampler']} ({cohort['sampler_description']})",
            f"- Taste weights: {cohort['weights_mode']}"
            + (f" (alpha {weights['alpha']}, beta {weights['beta']}, gamma {weights['gamma']})" if weights else ""),
            f"- Margin: {cohort['margin']}",
            f"- Half-life: {cohort['half_life_days']} days",
        ]
        if "backbone" in cohort:
            lines.append(f"- Backbone: {cohort['backbone'] or 'none (no clip has features)'}")
        if "taste_model" in cohort:
            model = cohort["taste_model"]
            lines.append(
                f"- Taste model: id {model['id']}, version {model['version']}, {model['backbone']}, "
                f"fitted on {model['judgments_fitted']} judgments" if model else "- Taste model: none active"
            )
        lines.append("")

    lines += ["## Columns", ""]
    lines += _table(
        ["name", "type", "null", "description"],
        [[c["name"], c["type"], "yes" if c["nullable"] else "no", c["description"]] for c in card["columns"]],
    )
    lines += ["", card["pseudonyms"], ""]

    clips = card["clips"]
    lines += ["## Clips", "", f"{clips['count']} clips appear in this export.", ""]
    lines += _table(["licence", "clips"], [[entry["licence"] or "not stated", entry["clips"]] for entry in clips["licences"]])
    lines.append("")
    lines += _table(
        ["credit", "clips"],
        [[entry["credit"] or "not stated", entry["clips"]] for entry in clips["credits"][:MARKDOWN_CREDITS]],
    )
    hidden = len(clips["credits"]) - MARKDOWN_CREDITS
    if hidden > 0:
        lines += ["", f"{hidden} more credits are listed in the JSON card."]
    lines.append("")
    return "\n".join(lines)
