"""Export requests, with the checks that run before any file is written."""

from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone

from comparisons.models import Cohort
from taste_site.conf import salon_settings

FORMATS = ("csv", "jsonl", "parquet")
# Formats that can be encoded row by row into an HTTP response. Parquet writes
# its footer last, so it is always prepared as a file by the export task.
STREAMABLE_FORMATS = ("csv", "jsonl")


class ExportError(ValueError):
    """Invalid export request; the message names the value and how to fix it."""


def parse_time(value, name):
    """Parse an ISO 8601 date or date-time; a value without an offset is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ExportError(
                f"Invalid {name} time {value!r}: use ISO 8601, for example 2026-12-01 or 2026-12-01T12:00:00Z."
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_time(value):
    """Return an aware datetime as ISO 8601 in UTC with a Z suffix, or None."""
    if value is None:
        return None
    if value.tzinfo is not timezone.utc:  # database values are already in UTC, so they skip the conversion
        value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class ExportOptions:
    """The parameters of one export, shared by the command, the web form and the task.

    ``since`` is inclusive and ``until`` exclusive, both on the time the judgment
    was stored. ``licence`` None means the ``SALON_EXPORT_LICENCE`` setting.
    """

    cohorts: list[str]
    format: str
    since: datetime | None = None
    until: datetime | None = None
    include_simulated: bool = False
    ties: bool = True
    skips: bool = True
    features: bool = False
    scores: bool = False
    platform_ids: bool = False
    backbone: str = ""
    licence: str | None = None

    def validate(self):
        """Check every value and return the cohorts in the order given.

        Raises
        ------
        ExportError
            For no or unknown cohorts, an unknown format or an empty time range.
        """
        slugs = list(dict.fromkeys(slug.strip() for slug in self.cohorts if slug and slug.strip()))
        if not slugs:
            raise ExportError("No cohort given: name at least one cohort by its slug.")
        if self.format not in FORMATS:
            raise ExportError(f"Unknown format {self.format!r}: use one of {', '.join(FORMATS)}.")
        self.since = parse_time(self.since, "since")
        self.until = parse_time(self.until, "until")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ExportError(
                f"The time range is empty: since {format_time(self.since)} is not before "
                f"until {format_time(self.until)}."
            )

        by_slug = {cohort.slug: cohort for cohort in Cohort.objects.filter(slug__in=slugs).select_related("pool")}
        unknown = [slug for slug in slugs if slug not in by_slug]
        if unknown:
            known = list(Cohort.objects.order_by("slug").values_list("slug", flat=True)[:30])
            raise ExportError(
                f"Unknown cohort {', '.join(repr(slug) for slug in unknown)}. "
                f"Known cohorts: {', '.join(known) if known else 'none yet'}."
            )
        self.cohorts = slugs
        return [by_slug[slug] for slug in slugs]

    def card_licence(self):
        """Return the licence for the dataset card: ``licence``, or the ``SALON_EXPORT_LICENCE`` setting when None."""
        return self.licence if self.licence is not None else salon_settings.EXPORT_LICENCE

    def to_json(self):
        """Return the options as JSON-ready values (times as ISO 8601 strings)."""
        data = asdict(self)
        data["since"] = format_time(parse_time(self.since, "since"))
        data["until"] = format_time(parse_time(self.until, "until"))
        return data

    @classmethod
    def from_json(cls, data):
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        options = cls(**known)
        options.since = parse_time(options.since, "since")
        options.until = parse_time(options.until, "until")
        return options
