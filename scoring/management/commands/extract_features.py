"""``manage.py extract_features``: compute clip features for chosen or all ready clips."""

from django.core.management.base import BaseCommand, CommandError

from comparisons.models import Clip
from scoring.backbones import BACKBONE_CHOICES
from taste_site.conf import salon_settings


class Command(BaseCommand):
    help = (
        "Compute the features of the named clips, or of every ready clip with --all. "
        "Without --sync the work is queued for the gpu workers in batches of FEATURE_BATCH_CLIPS; "
        "clips that already have features for the backbone are skipped unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("clip_ids", nargs="*", type=int, help="Ids of the clips to compute.")
        parser.add_argument("--all", action="store_true", help="Compute every ready clip.")
        parser.add_argument(
            "--backbone", choices=BACKBONE_CHOICES, default=None,
            help="Backbone to use (default: the SALON_BACKBONE setting).",
        )
        parser.add_argument(
            "--sync", action="store_true", help="Compute in this process instead of queueing Celery tasks.",
        )
        parser.add_argument(
            "--force", action="store_true", help="Recompute clips that already have features for the backbone.",
        )

    def handle(self, *args, clip_ids, all, backbone, sync, force, **options):
        if all and clip_ids:
            raise CommandError("Give clip ids or --all, not both.")
        if all:
            clip_ids = list(Clip.objects.filter(status=Clip.Status.READY).order_by("pk").values_list("pk", flat=True))
        elif not clip_ids:
            raise CommandError("Name the clip ids to compute, or pass --all for every ready clip.")
        if not clip_ids:
            self.stdout.write("No ready clips.")
            return

        size = salon_settings.FEATURE_BATCH_CLIPS
        chunks = [clip_ids[start:start + size] for start in range(0, len(clip_ids), size)]
        if sync:
            self._run_here(chunks, backbone, force)
        else:
            self._queue(chunks, backbone, force)

    def _queue(self, chunks, backbone, force):
        from scoring.tasks.features import extract_features

        for chunk in chunks:
            extract_features.apply_async(args=[chunk, backbone], kwargs={"force": force})
        total = sum(len(chunk) for chunk in chunks)
        self.stdout.write(f"Queued {total} clips in {len(chunks)} tasks on the gpu queue.")

    def _run_here(self, chunks, backbone, force):
        from scoring.features import compute_features

        written = existing = not_ready = failed = 0
        name = ""
        for chunk in chunks:
            run = compute_features(chunk, backbone=backbone, force=force)
            name = run.backbone
            written += len(run.written)
            existing += len(run.existing)
            not_ready += len(run.not_ready)
            failed += len(run.failed)
            for clip_id, reason in run.failed.items():
                self.stderr.write(f"Clip {clip_id} failed: {reason}")
            self.stdout.write(f"{name}: {len(run.written)} written, {run.frames} frames, {run.ms} ms")
        self.stdout.write(
            f"Backbone {name}: {written} clips written, {existing} already had features, "
            f"{not_ready} missing or not ready, {failed} failed."
        )
        if failed:
            raise CommandError(f"{failed} clips failed; see the messages above.")
