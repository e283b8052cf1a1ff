"""The one definition of the comparisons export: column names, types and meanings.

``rows.py`` builds each row in the order of :func:`columns_for`, every writer
encodes a value by its column's kind, and the dataset card lists the same
descriptions. Bump SCHEMA_VERSION whenever a column is added, removed, renamed
or changes meaning, so downstream readers can tell files apart.
"""

from dataclasses import dataclass

SCHEMA_VERSION = "1"

# Kinds of values, with how each format writes them:
#   int, float, str, bool: plain values; null is an empty CSV cell.
#   timestamp: ISO 8601 in UTC with a Z suffix in CSV and JSON Lines,
#              timestamp[us, UTC] in Parquet.
#   json: a JSON object, as JSON text in CSV and Parquet and inline in JSON Lines.
#   vector: float32 values, a JSON list in CSV and JSON Lines, list<float32> in Parquet.
KINDS = ("int", "float", "str", "bool", "timestamp", "json", "vector")

CORE, PLATFORM, FEATURES, SCORES = "core", "platform", "features", "scores"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    description: str
    group: str = CORE
    nullable: bool = False


def _clip_columns(side):
    return [
        Column(f"{side}_clip_id", "int", f"Id of the clip shown on the {side}."),
        Column(f"{side}_sha256", "str", f"SHA-256 of the {side} clip's original file."),
        Column(f"{side}_file_name", "str", f"File name of the {side} clip when it was imported."),
        Column(f"{side}_kind", "str", f"Media kind of the {side} clip: image or video."),
        Column(f"{side}_caption", "str", f"Caption of the {side} clip (empty when it has none)."),
        Column(f"{side}_prompt", "str", f"Generation prompt of the {side} clip (empty when it has none)."),
        Column(
            f"{side}_generator", "json",
            f"Generator metadata of the {side} clip (model, seed, settings); an empty object when unknown.",
        ),
    ]


def _feature_columns(side):
    return [
        Column(
            f"{side}_backbone", "str",
            f"Feature backbone of the {side} clip's features; null when the clip has none for it.",
            FEATURES, nullable=True,
        ),
        Column(
            f"{side}_semantic", "float",
            f"Semantic score of the {side} clip: CLIP cosine of frames and caption or prompt, clipped at 0; "
            "null without caption, prompt or a semantic backbone.",
            FEATURES, nullable=True,
        ),
        Column(
            f"{side}_frame_dissimilarity", "float",
            f"Mean 1 - cosine of adjacent sampled frame embeddings of the {side} clip (0 for an image).",
            FEATURES, nullable=True,
        ),
        Column(
            f"{side}_flicker", "float",
            f"Mean absolute luminance change between consecutive decoded frames of the {side} clip "
            "(0 for an image).",
            FEATURES, nullable=True,
        ),
        Column(
            f"{side}_embedding", "vector",
            f"L2-normalised mean frame embedding of the {side} clip (float32).",
            FEATURES, nullable=True,
        ),
    ]


def _score_columns(side):
    return [
        Column(
            f"{side}_score_total", "float",
            f"Taste score T(x) of the {side} clip under the taste model of this row.",
            SCORES, nullable=True,
        ),
        Column(
            f"{side}_score_semantic", "float",
            f"Standardised semantic term z(S_semantic) of the {side} clip; null when it has no semantic score.",
            SCORES, nullable=True,
        ),
        Column(
            f"{side}_score_aesthetic", "float",
            f"Standardised aesthetic term z(w . e) of the {side} clip.",
            SCORES, nullable=True,
        ),
        Column(
            f"{side}_score_incoherence", "float",
            f"Standardised incoherence term z(P_incoherence) of the {side} clip.",
            SCORES, nullable=True,
        ),
    ]


CORE_COLUMNS = [
    Column("comparison_id", "int", "Id of the comparison: one pair served to one rater."),
    Column("judgment_id", "int", "Id of the judgment that answered the comparison."),
    Column("cohort", "str", "Slug of the cohort the rater judged for."),
    Column(
        "rater", "str",
        "Pseudonymous rater id: a keyed hash of the user id, stable across exports of one deployment.",
    ),
    *_clip_columns("left"),
    *_clip_columns("right"),
    Column("choice", "str", "The answer: left, right, tie or skip."),
    Column(
        "winner_clip_id", "int", "Id of the preferred clip; null for a tie or a skip.", nullable=True
    ),
    Column(
        "client_ms", "int",
        "Response time measured in the browser, in milliseconds; null when the browser sent none.",
        nullable=True,
    ),
    Column("server_ms", "int", "Time from serving the pair to receiving the answer on the server, in milliseconds."),
    Column("served_at", "timestamp", "When the pair was served (UTC)."),
    Column("answered_at", "timestamp", "When the answer was stored (UTC)."),
    Column("reason", "str", "Why the pair was chosen: random, active, gold or repeat."),
    Column("is_gold", "bool", "True when the pair was a gold (quality-check) pair."),
    Column("is_repeat", "bool", "True when the pair repeated one the rater had already judged."),
    Column("is_simulated", "bool", "True when a simulated rater gave the judgment."),
]

PLATFORM_COLUMNS = [
    Column(
        "rater_platform", "str", "Recruitment platform of the rater's membership (prolific, mturk or empty).",
        PLATFORM,
    ),
    Column("rater_participant_id", "str", "Participant id on the recruitment platform.", PLATFORM),
    Column("rater_study_id", "str", "Study id on the recruitment platform.", PLATFORM),
    Column("rater_session_id", "str", "Session id on the recruitment platform.", PLATFORM),
]

FEATURE_COLUMNS = [*_feature_columns("left"), *_feature_columns("right")]

SCORE_COLUMNS = [
    Column(
        "taste_model_id", "int",
        "Id of the cohort's active taste model that gave the scores; null when the cohort has none.",
        SCORES, nullable=True,
    ),
    Column("taste_model_version", "int", "Version number of that taste model.", SCORES, nullable=True),
    Column("taste_model_backbone", "str", "Feature backbone of that taste model.", SCORES, nullable=True),
    *_score_columns("left"),
    *_score_columns("right"),
]


def columns_for(*, platform_ids=False, features=False, scores=False):
    """Return the columns of an export with the given optional groups, in row order."""
    columns = list(CORE_COLUMNS)
    if platform_ids:
        columns += PLATFORM_COLUMNS
    if features:
        columns += FEATURE_COLUMNS
    if scores:
        columns += SCORE_COLUMNS
    return columns
