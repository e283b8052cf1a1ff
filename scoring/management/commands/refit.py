"""``manage.py refit``: refit one cohort's taste function (or an all-judgments model) in this process."""

from django.core.management.base import BaseCommand, CommandError

from comparisons.models import Cohort
from scoring.refit import Outcome, run_all_judgments_refit, run_refit

# Outcomes after which nothing new is stored and the caller should look.
ERROR_OUTCOMES = {Outcome.NOT_READY, Outcome.FAILED, Outcome.MISSING}


def format_metric(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = (
        "Refit a cohort's taste function now, in this process, on its judgments up to the newest one "
        "(or --mark), and store the result as a new version. A refit of a mark that already has a "
        "finished version stores nothing. With --all-judgments, refit the hidden all-judgments model "
        "of --backbone instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cohort", metavar="SLUG", help="Slug of the cohort to refit.")
        parser.add_argument(
            "--backbone",
            help="Stored backbone name (such as handcrafted:v1) or auto, clip, handcrafted; "
                 "default: the SALON_BACKBONE setting, resolved from the pool's features.",
        )
        parser.add_argument("--mark", type=int, help="High-water judgment id; default: the newest judgment now.")
        parser.add_argument(
            "--all-judgments", action="store_true",
            help="Refit the all-judgments model of --backbone (a stored backbone name).",
        )

    def handle(self, *args, cohort, backbone, mark, all_judgments, **options):
        if mark is not None and mark < 0:
            raise CommandError(f"--mark must be a judgment id >= 0, got {mark}.")
        if all_judgments:
            if cohort:
                raise CommandError("Give --cohort or --all-judgments, not both.")
            if not backbone or ":" not in backbone:
                raise CommandError(
                    "--all-judgments needs --backbone with a stored backbone name, such as handcrafted:v1."
                )
            outcome = run_all_judgments_refit(backbone, mark)
        else:
            if not cohort:
                raise CommandError("Name the cohort to refit with --cohort SLUG (or pass --all-judgments).")
            found = Cohort.objects.filter(slug=cohort).first()
            if found is None:
                known = ", ".join(Cohort.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none"
                raise CommandError(f"No cohort with slug {cohort!r}. Known cohorts: {known}.")
            outcome = run_refit(found.pk, backbone, mark)

        if outcome.status in ERROR_OUTCOMES:
            raise CommandError(f"No new version ({outcome.status}): {outcome.message}")
        if outcome.status != Outcome.FINISHED:
            self.stdout.write(f"Nothing stored ({outcome.status}): {outcome.message}")
            return
        metrics = outcome.metrics
        self.stdout.write(
            f"Stored version {outcome.version} ({outcome.backbone}, mark {outcome.mark}): "
            f"{metrics['n_pairs']} judgments over {metrics['n_clips']} clips in {metrics['fit_ms']} ms."
        )
        self.stdout.write(
            f"held-out accuracy {format_metric(metrics['held_out_accuracy'])} "
            f"({metrics['n_held_out']} newest judgments), train accuracy {format_metric(metrics['train_accuracy'])}, "
            f"objective {format_metric(metrics['objective'], 4)}, drift (Kendall tau) "
            f"{format_metric(metrics['drift_kendall_tau'])}, top-10 diversity {format_metric(metrics['top10_diversity'])}, "
            f"clips without a semantic score {metrics['n_missing_semantic']}."
        )
