"""Export every taste model version of one or more cohorts as JSON."""

import json
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from comparisons.exports.files import check_output_path
from comparisons.exports.options import ExportError
from comparisons.exports.taste_models import taste_models_document


class Command(BaseCommand):
    help = (
        "Write the taste model versions of cohorts as JSON: weights (alpha, beta, gamma), head w, "
        "standardisation, margin, half-life, training window, metrics, status and the active flag."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--cohort", dest="cohorts", action="append", required=True, metavar="SLUG",
            help="Cohort by slug; repeat for several cohorts.",
        )
        parser.add_argument("--output", metavar="PATH", help="File to write. Default: standard output.")
        parser.add_argument("--overwrite", action="store_true", help="Replace the output file if it exists.")

    def handle(self, *args, **options):
        cohorts = options["cohorts"]
        try:
            document = taste_models_document([cohorts] if isinstance(cohorts, str) else cohorts)
        except ExportError as error:
            raise CommandError(str(error)) from error
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"

        if not options.get("output"):
            self.stdout.write(text, ending="")
            return
        output = Path(options["output"]).expanduser().absolute()
        try:
            check_output_path(output, options.get("overwrite", False))
        except ExportError as error:
            raise CommandError(str(error)) from error
        handle, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(name, output)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        versions = sum(len(cohort["versions"]) for cohort in document["cohorts"])
        self.stdout.write(f"Wrote {versions} taste model versions to {output}")
