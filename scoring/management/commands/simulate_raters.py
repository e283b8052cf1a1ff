"""``manage.py simulate_raters``: raters with a planted taste vote through the real vote path."""

import json
import math
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from comparisons.actions import EndState
from comparisons.models import Cohort
from scoring.simulated_raters import (
    SimulationError,
    check_can_vote_fast,
    ensure_simulated_raters,
    plant_pool_taste,
    run_simulation,
)


class Command(BaseCommand):
    help = (
        "Create N simulated raters in a cohort and let them judge M pairs through the real vote path, "
        "following a planted taste T = alpha z(semantic) + beta z(d . e) - gamma z(incoherence) with "
        "Bradley-Terry noise. d is a hidden direction in the span of the pool's stored embeddings. "
        "Simulated raters obey the daily goal; SALON_SIMULATED_RATERS_EXEMPT exempts them from the "
        "minimum view time and the rate limit only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cohort", required=True, metavar="SLUG", help="Slug of the cohort to vote in.")
        parser.add_argument("--raters", required=True, type=int, metavar="N",
                            help="Simulated raters, named sim-<slug>-1 .. N; existing ones are reused.")
        parser.add_argument("--judgments", required=True, type=int, metavar="M",
                            help="Judgments to store in total, across the raters, skips included.")
        parser.add_argument("--alpha", required=True, type=float, help="Planted weight of the semantic term, >= 0.")
        parser.add_argument("--beta", required=True, type=float, help="Planted weight of the aesthetic term, >= 0.")
        parser.add_argument("--gamma", required=True, type=float,
                            help="Planted weight of the incoherence penalty, >= 0.")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the pairs and the raters' choices.")
        parser.add_argument("--direction-seed", type=int, default=None,
                            help="Seed of the hidden aesthetic direction (default: --seed).")
        parser.add_argument("--dims", type=int, default=3,
                            help="Principal directions of the pool's embeddings the hidden direction combines.")
        parser.add_argument("--backbone", default=None,
                            help="Features to plant the taste in (default: the SALON_BACKBONE setting).")
        parser.add_argument("--output", type=Path, default=None,
                            help="Write the planted parameters, direction and true score of each clip to this JSON file.")

    def handle(self, *args, cohort, raters, judgments, alpha, beta, gamma, seed, direction_seed, dims, backbone,
               output, **options):
        if raters < 1:
            raise CommandError(f"--raters must be at least 1, got {raters}.")
        if judgments < 1:
            raise CommandError(f"--judgments must be at least 1, got {judgments}.")
        found = Cohort.objects.select_related("pool").filter(slug=cohort).first()
        if found is None:
            known = ", ".join(Cohort.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none"
            raise CommandError(f"No cohort with slug {cohort!r}. Known cohorts: {known}.")
        if not found.is_open:
            raise CommandError(f"Cohort {cohort!r} is closed for voting; open it in the admin first.")
        direction_seed = seed if direction_seed is None else direction_seed

        try:
            check_can_vote_fast(found, raters, judgments)
            planted = plant_pool_taste(
                found, alpha=alpha, beta=beta, gamma=gamma, dims=dims, direction_seed=direction_seed,
                backbone=backbone,
            )
            users, created = ensure_simulated_raters(found, raters)
            self._report_plan(found, planted, raters, created, judgments)
            run = run_simulation(found, users, planted, judgments, seed=seed)
        except SimulationError as error:
            raise CommandError(str(error)) from error

        if output:
            output.write_text(json.dumps(planted.as_dict(), indent=2))
            self.stdout.write(f"Planted taste written to {output}.")
        self._report_run(found, run, raters)

    def _report_plan(self, cohort, planted, raters, created, judgments):
        self.stdout.write(
            f"Planted taste in {cohort.slug!r} ({planted.backbone}): alpha={planted.alpha:g} beta={planted.beta:g} "
            f"gamma={planted.gamma:g}, hidden direction over {planted.dims} principal directions "
            f"(direction seed {planted.direction_seed})."
        )
        self.stdout.write(
            f"{len(planted.true_scores)} clips scored by the planted taste; "
            f"{planted.n_clips_without_features} without usable features (pairs with them are skipped). "
            f"Best possible accuracy on a random pair: {planted.bayes_accuracy():.3f}."
        )
        self.stdout.write(f"{raters} simulated raters ({created} new).")
        goal = cohort.daily_goal
        if goal and raters * goal < judgments:
            self.stdout.write(self.style.WARNING(
                f"The daily goal of {goal} lets {raters} raters store at most {raters * goal} judgments today; "
                f"use --raters {math.ceil(judgments / goal)} or more for {judgments}."
            ))

    def _report_run(self, cohort, run, raters):
        choices = ", ".join(f"{count} {choice}" for choice, count in sorted(run.choices.items())) or "none"
        self.stdout.write(f"Stored {run.stored} of {run.requested} judgments ({choices}) in {run.elapsed_ms} ms.")
        if run.unscored_pairs:
            self.stdout.write(f"{run.unscored_pairs} pairs had a clip without features and were skipped.")
        if not run.end_states:
            return
        for code, count in sorted(Counter(run.end_states.values()).items()):
            self.stdout.write(f"{count} of {raters} raters stopped: {code}.")
        if run.stored < run.requested:
            advice = []
            if EndState.DAILY_GOAL_REACHED in run.end_states.values():
                # Raters who reached the goal stay spent until tomorrow, so the
                # advice counts the new raters the missing judgments need.
                missing = run.requested - run.stored
                advice.append(
                    f"simulated raters are not exempt from the daily goal ({cohort.daily_goal}): use "
                    f"--raters {raters + math.ceil(missing / cohort.daily_goal)} or more, or raise the goal"
                )
            if EndState.ALL_JUDGED in run.end_states.values():
                advice.append("the raters judged every pair of the pool: add clips or raters")
            message = f"Stopped early with {run.stored} of {run.requested} judgments"
            if advice:
                message += ": " + "; ".join(advice)
            self.stdout.write(self.style.WARNING(message + "."))
