"""Export the comparisons of one or more cohorts, with a dataset card beside the file."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from comparisons.exports.files import export_to_path
from comparisons.exports.options import FORMATS, ExportError, ExportOptions
from comparisons.models import Judgment

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class Command(BaseCommand):
    help = (
        "Export judgments with their comparisons, clips and pseudonymous rater ids as CSV, "
        "JSON Lines or Parquet, and write PATH.card.md and PATH.card.json beside the file. "
        "A valid time range without judgments gives a file with no rows and a card that says so."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--cohort", dest="cohorts", action="append", required=True, metavar="SLUG",
            help="Cohort to export, by slug; repeat for several cohorts.",
        )
        parser.add_argument(
            "--since", metavar="ISO",
            help="Only judgments answered at or after this ISO 8601 time (UTC when no offset is given).",
        )
        parser.add_argument(
            "--until", metavar="ISO", help="Only judgments answered before this ISO 8601 time (end excluded).",
        )
        parser.add_argument(
            "--format", choices=FORMATS,
            help="File format. Default: taken from the output suffix (.csv, .jsonl or .parquet).",
        )
        parser.add_argument("--output", required=True, metavar="PATH", help="File to write.")
        parser.add_argument("--overwrite", action="store_true", help="Replace the file and its cards if they exist.")
        parser.add_argument(
            "--include-simulated", action="store_true", help="Include judgments of simulated raters (left out by default).",
        )
        parser.add_argument("--no-ties", action="store_true", help="Leave out ties.")
        parser.add_argument("--no-skips", action="store_true", help="Leave out skips.")
        parser.add_argument(
            "--features", action="store_true",
            help="Add each clip's backbone, semantic score, incoherence components and mean embedding.",
        )
        parser.add_argument(
            "--scores", action="store_true",
            help="Add the cohort's active taste model and each clip's total and term scores under it.",
        )
        parser.add_argument(
            "--backbone", default="",
            help="Backbone for --features and --scores, such as handcrafted:v1. Default: the backbone of each "
                 "cohort's active taste model, else the one with features for most of its pool.",
        )
        parser.add_argument(
            "--platform-ids", action="store_true",
            help="Add recruitment-platform ids (platform, participant, study, session). These identify people.",
        )
        parser.add_argument(
            "--licence", default=None,
            help="Licence of the dataset, written on the card. Default: the SALON_EXPORT_LICENCE setting.",
        )

    def handle(self, *args, **options):
        output = Path(options["output"])
        file_format = options.get("format") or SUFFIXES.get(output.suffix.lower())
        if not file_format:
            raise CommandError(
                f"Cannot tell the format of {str(output)!r} from its suffix: pass --format with one of "
                f"{', '.join(FORMATS)}."
            )
        cohorts = options["cohorts"]
        export_options = ExportOptions(
            cohorts=[cohorts] if isinstance(cohorts, str) else list(cohorts),
            format=file_format,
            since=options.get("since"),
            until=options.get("until"),
            include_simulated=options.get("include_simulated", False),
            ties=not options.get("no_ties", False),
            skips=not options.get("no_skips", False),
            features=options.get("features", False),
            scores=options.get("scores", False),
            platform_ids=options.get("platform_ids", False),
            backbone=options.get("backbone") or "",
            licence=options.get("licence"),
        )
        try:
            result = export_to_path(export_options, output, overwrite=options.get("overwrite", False))
        except (ExportError, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from error

        if result.rows == 0:
            message = "No judgment matched the filters: the file has no rows."
            simulated = 0 if export_options.include_simulated else count_simulated(export_options.cohorts)
            if simulated:
                message += f" {simulated} simulated judgments were left out: add --include-simulated to export them."
            self.stderr.write(self.style.WARNING(message))
        self.stdout.write(
            f"Wrote {result.rows} rows to {result.path} ({result.size_bytes} bytes); "
            f"cards: {result.card_markdown_path.name}, {result.card_json_path.name}"
        )


def count_simulated(cohort_slugs):
    """Return how many simulated judgments the cohorts hold, for the empty-export hint."""
    return Judgment.objects.filter(comparison__cohort__slug__in=cohort_slugs, is_simulated=True).count()
