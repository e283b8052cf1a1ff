"""Import media files as clips: probe, store the original, create the row, enqueue processing.

Both ``manage.py import_clips`` and the admin import page call
:class:`Importer`. For each file it computes the sha256 and probes the file
(kind, size, duration, codec, whether a browser plays it as is). It then
copies the original into storage under its sha256, creates a pending
:class:`Clip` and enqueues :func:`comparisons.tasks.process_clip` once the
row is committed.
A file that cannot be used gets one line with its path and the reason, and
the import goes on. When the file could be read and hashed, it also gets a
failed clip row.

Rules:

- Duplicates (same sha256 as a pending or ready clip) are skipped, but
  still join the pool; a pending duplicate is enqueued again, which is
  harmless because the task does nothing for a clip that is no longer
  pending. NOTE: a duplicate keeps its stored caption and metadata, so a
  caption CSV given on a later run does not update clips imported before.
- A failed clip with the same sha256 is retried: reset to pending when the
  file now passes the probe, or given the new reason when it fails again.
- Files that are not media (README, CSV, scripts, hidden files) are
  ignored in a folder, but a manifest row that names one fails.
- A caption CSV row that names a missing file counts as failed.
"""

import csv
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from comparisons import media
from comparisons.models import Clip, Pool, Prompt
from comparisons.models.clips import upload_original
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("path", "caption", "prompt", "generator", "licence", "credit", "source")
# Column lengths of the Clip model, checked here so that PostgreSQL never
# rejects a row halfway through an import.
MAX_LENGTHS = {"licence": 255, "credit": 500, "source": 1000}
STORED_IMAGE_SUFFIX = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}

PING_ATTEMPTS = 3

IMPORTED = "imported"
DUPLICATE = "duplicate"
FAILED = "failed"
IGNORED = "ignored"


class ImportInputError(Exception):
    """The import as a whole cannot start: a missing folder, an unreadable CSV."""


@dataclass
class ClipMetadata:
    """Descriptive fields of a clip, from a caption CSV row."""

    caption: str = ""
    prompt: str = ""
    generator: dict = field(default_factory=dict)
    licence: str = ""
    credit: str = ""
    source: str = ""


@dataclass
class CsvRow:
    """One row of a caption CSV or manifest."""

    line: int
    raw_path: str
    path: Path
    metadata: ClipMetadata


@dataclass
class CaptionTable:
    """The rows of a caption CSV, keyed by resolved file path, and its problems."""

    csv_path: Path
    rows: list
    by_path: dict
    problems: list
    rejected: set


@dataclass
class Outcome:
    """The result of importing one file: status, display path, message and clip id."""

    status: str
    display: str
    message: str = ""
    clip_id: int | None = None


@dataclass
class ImportReport:
    """Everything an import did, in order, with the ids of clips sent for processing."""

    outcomes: list = field(default_factory=list)
    enqueued: list = field(default_factory=list)
    notices: list = field(default_factory=list)

    def count(self, status):
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def counts(self):
        return {status: self.count(status) for status in (IMPORTED, DUPLICATE, FAILED, IGNORED)}

    def summary(self):
        """Return the one-line summary the command prints last."""
        return _(
            "Summary: %(imported)d imported, %(duplicate)d duplicate, %(failed)d failed, %(ignored)d ignored."
        ) % self.counts


def format_outcome(outcome):
    """Return the line printed for ``outcome``: status, path and message."""
    if outcome.message:
        return "%s: %s: %s" % (outcome.status, outcome.display, outcome.message)
    return "%s: %s" % (outcome.status, outcome.display)


# Caption CSV and manifest


def parse_generator(text):
    """Return generator metadata from a CSV cell: a JSON object, or plain text as the model name.

    Raises ValueError when the cell starts like JSON but is not a JSON object.
    """
    text = text.strip()
    if not text:
        return {}
    if text[0] in "{[":
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(_("generator must be a JSON object such as {\"model\": \"...\", \"seed\": 1}"))
        return value
    return {"model": text}


def _row_metadata(row):
    metadata = ClipMetadata(
        caption=(row.get("caption") or "").strip(),
        prompt=(row.get("prompt") or "").strip(),
        licence=(row.get("licence") or "").strip(),
        credit=(row.get("credit") or "").strip(),
        source=(row.get("source") or "").strip(),
    )
    for name, limit in MAX_LENGTHS.items():
        if len(getattr(metadata, name)) > limit:
            raise ValueError(
                _("the %(column)s cell has %(length)d characters, more than the %(limit)d allowed; shorten it")
                % {"column": name, "length": len(getattr(metadata, name)), "limit": limit}
            )
    try:
        metadata.generator = parse_generator(row.get("generator") or "")
    except json.JSONDecodeError as error:
        raise ValueError(
            _("the generator cell is not valid JSON (%(error)s); write a JSON object or plain text")
            % {"error": error}
        ) from None
    return metadata


def fill_missing_metadata(metadata, fallback):
    """Return ``metadata`` with its empty fields taken from ``fallback``."""
    filled = {
        name: getattr(metadata, name) or getattr(fallback, name)
        for name in ("caption", "prompt", "generator", "licence", "credit", "source")
    }
    return ClipMetadata(**filled)


def read_caption_csv(csv_path, base_folder=None):
    """Read a caption CSV or manifest; return its CaptionTable.

    Paths are relative to ``base_folder``, by default the CSV's folder. Rows that name missing files
    or hold invalid cells become problems, one ``(line, path, message)``
    each, and the other rows stay usable. Raises ImportInputError when the
    CSV cannot be read at all or has no ``path`` column.
    """
    csv_path = Path(csv_path)
    base = Path(base_folder) if base_folder is not None else csv_path.parent
    rows, by_path, problems, rejected = [], {}, [], set()
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                raise ImportInputError(
                    _("The CSV %(csv)s is empty; its first line must be a header such as path,caption.")
                    % {"csv": csv_path}
                )
            reader.fieldnames = [(name or "").strip().lower() for name in reader.fieldnames]
            if "path" not in reader.fieldnames:
                raise ImportInputError(
                    _("The CSV %(csv)s has no 'path' column (columns: %(columns)s). "
                      "Its header must name the columns, such as path,caption.")
                    % {"csv": csv_path, "columns": ", ".join(reader.fieldnames)}
                )
            for row in reader:
                line = reader.line_num
                raw_path = (row.get("path") or "").strip()
                if not raw_path:
                    problems.append((line, raw_path, _("the path cell is empty; fill it in or remove the row")))
                    continue
                path = base / raw_path
                try:
                    metadata = _row_metadata(row)
                except ValueError as error:
                    problems.append((line, raw_path, str(error)))
                    rejected.add(path.resolve())
                    continue
                if not path.exists() and not path.is_symlink():
                    problems.append((
                        line, raw_path,
                        _("not found (looked for %(full)s); fix the path, which is relative to the CSV's "
                          "folder, or remove the row") % {"full": path},
                    ))
                    continue
                key = path.resolve()
                if key in by_path:
                    problems.append((
                        line, raw_path,
                        _("names the same file as line %(first)d; remove one of the two rows")
                        % {"first": by_path[key].line},
                    ))
                    continue
                entry = CsvRow(line=line, raw_path=raw_path, path=path, metadata=metadata)
                rows.append(entry)
                by_path[key] = entry
    except OSError as error:
        raise ImportInputError(_("Cannot read the CSV %(csv)s: %(error)s") % {"csv": csv_path, "error": error}) from None
    except UnicodeDecodeError:
        raise ImportInputError(
            _("The CSV %(csv)s is not UTF-8 text; save it as UTF-8 and try again.") % {"csv": csv_path}
        ) from None
    except csv.Error as error:
        raise ImportInputError(
            _("The CSV %(csv)s is malformed: %(error)s") % {"csv": csv_path, "error": error}
        ) from None
    return CaptionTable(csv_path=csv_path, rows=rows, by_path=by_path, problems=problems, rejected=rejected)


# Folders and import roots


def is_within(path, roots):
    """Return True when the resolved ``path`` lies inside one of the resolved ``roots``."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def resolve_import_folder(raw, roots):
    """Return the folder ``raw`` resolved, after checking that it lies inside ``roots``.

    A relative path is looked up under each root in turn. ``..`` parts and
    symbolic links are resolved first, so neither can lead outside the
    roots. Raises ImportInputError naming the problem.
    """
    raw = (raw or "").strip()
    if not raw:
        raise ImportInputError(_("Enter a folder path."))
    if not roots:
        raise ImportInputError(_("No import folders are configured; set SALON_IMPORT_ROOTS."))
    candidate = Path(raw)
    candidates = [candidate] if candidate.is_absolute() else [Path(root) / candidate for root in roots]
    for path in candidates:
        resolved = path.resolve()
        if not is_within(resolved, roots):
            continue
        if resolved.is_dir():
            return resolved
    raise ImportInputError(
        _("The folder %(path)s is not an existing folder inside the import roots (%(roots)s). "
          "Use a folder under one of them; '..' and links that lead outside are rejected.")
        % {"path": raw, "roots": ", ".join(str(root) for root in roots)}
    )


def walk_folder(folder):
    """Yield every file path under ``folder``, sorted, skipping hidden folders."""
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(files):
            yield Path(directory) / name


def save_uploads(uploads, folder):
    """Write uploaded files into ``folder`` under safe, distinct names; return the paths."""
    paths = []
    used = set()
    for upload in uploads:
        # The base name keeps a caption CSV's paths valid; it has no folder
        # part, so it cannot point outside ``folder``.
        name = Path(upload.name.replace("\x00", "")).name
        if name in ("", ".", ".."):
            name = "upload"
        stem, suffix = os.path.splitext(name)
        number = 1
        while name.lower() in used:
            number += 1
            name = "%s-%d%s" % (stem, number, suffix)
        used.add(name.lower())
        path = Path(folder) / name
        with open(path, "wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        paths.append(path)
    return paths


# The importer


class Importer:
    """Import files into clips, optionally into a pool; see the module docstring for the rules.

    Parameters
    ----------
    pool_name : str, optional
        Pool that imported and duplicate clips join; created when missing.
    allowed_roots : list of path, optional
        When given, files whose resolved path lies outside them fail, so a
        link inside an import folder cannot reach other files.
    emit : callable, optional
        Called with each printable line as soon as it is known.
    verbosity : int
        1 prints failures and notices, 2 also each imported or duplicate file.
    """

    def __init__(self, pool_name=None, allowed_roots=None, emit=None, verbosity=1):
        self.pool_name = (pool_name or "").strip()
        self.allowed_roots = allowed_roots
        self.emit = emit or (lambda line: None)
        self.verbosity = verbosity
        self.report = ImportReport()
        self.pool = None

    # Entry points

    def import_path(self, path, captions=None):
        """Import a folder (recursively) or the rows of a manifest CSV; return the report."""
        path = Path(path)
        if not path.exists():
            raise ImportInputError(
                _("%(path)s does not exist; give a folder of media files or a manifest CSV.") % {"path": path}
            )
        if path.is_dir():
            return self.import_folder(path, captions)
        if path.suffix.lower() == ".csv":
            return self.import_manifest(path, captions)
        raise ImportInputError(
            _("%(path)s is neither a folder nor a CSV file; give a folder of media files or a manifest CSV.")
            % {"path": path}
        )

    def import_folder(self, folder, captions=None, captions_base=None):
        """Import every media file under ``folder``, with metadata from the ``captions`` CSV.

        Paths in the CSV are relative to ``captions_base``, by default the CSV's folder.
        """
        started = time.perf_counter()
        folder = Path(folder)
        table = read_caption_csv(captions, captions_base) if captions else None
        self._prepare_pool()
        if table is not None:
            self._report_csv_problems(table)
        for path in walk_folder(folder):
            display = str(path.relative_to(folder))
            if path.name.startswith("."):
                self._record(Outcome(IGNORED, display, _("hidden file")))
                continue
            key = path.resolve()
            if table is not None and key in table.rejected:
                continue
            row = table.by_path.get(key) if table is not None else None
            self.import_file(path, display, row.metadata if row else None, explicit=False)
        self._log_done(folder, started)
        return self.report

    def import_manifest(self, csv_path, captions=None):
        """Import exactly the rows of the manifest ``csv_path``, in order.

        A ``captions`` CSV fills the cells that the manifest leaves empty for
        the same files, so a manifest of licences and a separate caption file
        can be imported together. Its rows for files the manifest does not
        list are not imported.
        """
        started = time.perf_counter()
        table = read_caption_csv(csv_path)
        extra = read_caption_csv(captions) if captions else None
        self._prepare_pool()
        self._report_csv_problems(table)
        if extra is not None:
            self._report_csv_problems(extra)
        for row in table.rows:
            display = "%s line %d: %s" % (table.csv_path.name, row.line, row.raw_path)
            metadata = row.metadata
            extra_row = extra.by_path.get(row.path.resolve()) if extra is not None else None
            if extra_row is not None:
                metadata = fill_missing_metadata(metadata, extra_row.metadata)
            self.import_file(row.path, display, metadata, explicit=True)
        self._log_done(csv_path, started)
        return self.report

    def import_uploads(self, uploads, captions_upload=None):
        """Import uploaded files through a temporary folder, with an uploaded caption CSV naming them."""
        with tempfile.TemporaryDirectory(prefix="salon-upload-") as folder, \
                tempfile.TemporaryDirectory(prefix="salon-captions-") as captions_folder:
            save_uploads(uploads, folder)
            captions = save_uploads([captions_upload], captions_folder)[0] if captions_upload is not None else None
            # The CSV names the uploaded files by their names, so its paths
            # are relative to the upload folder, not to its own.
            return self.import_folder(folder, captions, captions_base=folder)

    def import_folder_with_uploaded_captions(self, folder, captions_upload=None):
        """Import ``folder`` with an uploaded caption CSV whose paths are relative to ``folder``."""
        if captions_upload is None:
            return self.import_folder(folder)
        with tempfile.TemporaryDirectory(prefix="salon-captions-") as captions_folder:
            captions = save_uploads([captions_upload], captions_folder)[0]
            return self.import_folder(folder, captions, captions_base=folder)

    # One file

    def import_file(self, path, display, metadata=None, explicit=False):
        """Import one file, record its Outcome in the report, pass its line to ``emit`` and return it."""
        path = Path(path)
        if not path.is_file():
            if not explicit and media.extension_kind(path) is None:
                return self._record(Outcome(IGNORED, display))
            return self._record(Outcome(FAILED, display, self._unreadable_reason(path)))
        if self.allowed_roots is not None and not is_within(path, self.allowed_roots):
            return self._record(Outcome(
                FAILED, display,
                _("it resolves to %(target)s, outside the import roots; copy the file into the folder instead "
                  "of linking it") % {"target": path.resolve()},
            ))

        try:
            head = media.read_head(path)
        except OSError as error:
            return self._record(Outcome(FAILED, display, _("cannot read the file: %(error)s") % {"error": error}))
        kind = media.media_kind(path, head)
        if kind is None:
            if explicit:
                return self._record(Outcome(
                    FAILED, display,
                    _("not a media file; import JPEG, PNG or WebP images, or videos ffmpeg can read"),
                ))
            return self._record(Outcome(IGNORED, display))

        try:
            sha256, size = media.sha256_of(path)
        except OSError as error:
            return self._record(Outcome(FAILED, display, _("cannot read the file: %(error)s") % {"error": error}))

        existing = Clip.objects.filter(sha256=sha256).first()
        if existing is not None and existing.status != Clip.Status.FAILED:
            return self._duplicate(existing, display)

        try:
            info = media.probe(
                path, kind,
                max_video_seconds=salon_settings.MAX_VIDEO_SECONDS,
                max_video_pixels=salon_settings.MAX_VIDEO_PIXELS,
                max_image_pixels=salon_settings.MAX_IMAGE_PIXELS,
            )
        except media.MediaError as error:
            return self._failed_clip(path, display, sha256, kind, metadata, existing, str(error))
        except OSError as error:
            reason = _("cannot read the file: %(error)s") % {"error": error}
            return self._failed_clip(path, display, sha256, kind, metadata, existing, reason)
        return self._store_clip(path, display, sha256, info, metadata, existing)

    # Helpers

    def _prepare_pool(self):
        if self.pool_name and self.pool is None:
            self.pool, created = Pool.objects.get_or_create(name=self.pool_name)
            if created:
                self._notice(_("Created the pool %(pool)s.") % {"pool": self.pool_name})

    def _report_csv_problems(self, table):
        for line, raw_path, message in table.problems:
            display = "%s line %d: %s" % (table.csv_path.name, line, raw_path or "(empty)")
            self._record(Outcome(FAILED, display, message))

    def _notice(self, line):
        self.report.notices.append(line)
        self.emit(line)

    def _record(self, outcome):
        self.report.outcomes.append(outcome)
        if outcome.status == FAILED or (self.verbosity >= 2 and outcome.status != IGNORED) or self.verbosity >= 3:
            self.emit(format_outcome(outcome))
        return outcome

    @staticmethod
    def _unreadable_reason(path):
        if path.is_dir():
            return _("is a folder, not a file; name the files inside it instead")
        if path.is_symlink():
            return _("is a broken symbolic link to %(target)s; fix or remove the link") % {
                "target": os.readlink(path)
            }
        if not path.exists():
            return _("not found; check the path")
        return _("is not a regular file (a device, socket or pipe); copy the media into a regular file")

    def _duplicate(self, clip, display):
        if self.pool is not None:
            self.pool.clips.add(clip)
        if clip.status == Clip.Status.PENDING:
            # A pending clip whose message was lost would stay pending for
            # ever; sending it again is safe because the task is idempotent.
            self._enqueue(clip.pk)
        message = _("same content as clip #%(id)d (%(name)s, %(status)s)") % {
            "id": clip.pk, "name": clip.original_name, "status": clip.get_status_display(),
        }
        return self._record(Outcome(DUPLICATE, display, message, clip.pk))

    @staticmethod
    def _apply_metadata(clip, metadata):
        clip.caption = metadata.caption
        clip.generator = metadata.generator
        clip.licence = metadata.licence
        clip.credit = metadata.credit
        clip.source = metadata.source
        clip.prompt = Prompt.objects.get_or_create(text=metadata.prompt)[0] if metadata.prompt else None

    def _failed_clip(self, path, display, sha256, kind, metadata, existing, reason):
        """Record a file that was read and hashed but cannot be used, as a failed clip."""
        if existing is not None:
            Clip.objects.filter(pk=existing.pk, status=Clip.Status.FAILED).update(
                failure_reason=reason, updated_at=timezone.now()
            )
            return self._record(Outcome(FAILED, display, reason, existing.pk))
        clip = Clip(
            sha256=sha256, kind=kind, original_name=path.name[:255], source_path=str(path)[:1024],
            status=Clip.Status.FAILED, failure_reason=reason,
        )
        if metadata is not None:
            self._apply_metadata(clip, metadata)
        try:
            with transaction.atomic():
                clip.save()
        except IntegrityError:
            # Another import stored the same content in the meantime.
            clip = Clip.objects.get(sha256=sha256)
        return self._record(Outcome(FAILED, display, reason, clip.pk))

    def _store_original(self, clip, path, info):
        """Copy ``path`` into storage at the sha256 name, unless that file is already there."""
        suffix = STORED_IMAGE_SUFFIX.get(info.codec) if info.kind == media.IMAGE else path.suffix.lower()
        filename = clip.sha256 + (suffix or ".bin")
        name = upload_original(clip, filename)
        storage = clip.original.storage
        if storage.exists(name) and storage.size(name) == path.stat().st_size:
            clip.original.name = name
            return False
        if storage.exists(name):
            storage.delete(name)
        with open(path, "rb") as handle:
            clip.original.save(filename, File(handle), save=False)
        return True

    def _store_clip(self, path, display, sha256, info, metadata, existing):
        """Store the original, save the clip as pending and enqueue its processing."""
        from comparisons.tasks import send_process_clip

        clip = existing if existing is not None else Clip(sha256=sha256)
        clip.kind = info.kind
        clip.original_name = path.name[:255]
        clip.source_path = str(path)[:1024]
        clip.width, clip.height = info.width, info.height
        clip.duration, clip.fps = info.duration, info.fps
        clip.codec = info.codec[:64]
        clip.status = Clip.Status.PENDING
        clip.failure_reason = ""
        if metadata is not None or existing is None:
            self._apply_metadata(clip, metadata or ClipMetadata())
        copied = self._store_original(clip, path, info)
        try:
            with transaction.atomic():
                clip.save()
                if self.pool is not None:
                    self.pool.clips.add(clip)
                send_process_clip(clip.pk)
        except IntegrityError:
            # Another import stored the same content between the lookup and
            # this insert: the file at the sha256 name is theirs to keep.
            other = Clip.objects.get(sha256=sha256)
            if copied and other.original.name != clip.original.name:
                clip.original.storage.delete(clip.original.name)
            return self._duplicate(other, display)
        self.report.enqueued.append(clip.pk)
        details = "%s %dx%d" % (info.kind, info.width, info.height)
        if info.kind == media.VIDEO:
            details += ", %.1f s, %s%s" % (
                info.duration, info.codec, "" if info.browser_playable else _(", will be transcoded")
            )
        message = _("clip #%(id)d (%(details)s)") % {"id": clip.pk, "details": details}
        return self._record(Outcome(IMPORTED, display, message, clip.pk))

    def _enqueue(self, clip_id):
        from comparisons.tasks import send_process_clip

        send_process_clip(clip_id)
        self.report.enqueued.append(clip_id)

    def _log_done(self, source, started):
        counts = self.report.counts
        logger.info(
            "Imported %s: %d imported, %d duplicate, %d failed, %d ignored in %d ms",
            source, counts[IMPORTED], counts[DUPLICATE], counts[FAILED], counts[IGNORED],
            round((time.perf_counter() - started) * 1000),
        )


# Waiting for the worker


def ping_workers(timeout=2.0):
    """Return the names of Celery workers that reply to a ping within ``timeout`` seconds.

    Returns an empty list when the broker cannot be reached either.
    """
    from taste_site.celery import app

    for attempt in range(1, PING_ATTEMPTS + 1):
        try:
            replies = app.control.ping(timeout=timeout)
        except ValueError as error:
            # The filesystem transport can hand over a reply file that the
            # worker is still writing, which fails to decode as JSON.
            logger.info("Ping reply could not be decoded (attempt %d of %d): %s", attempt, PING_ATTEMPTS, error)
            continue
        except Exception as error:  # noqa: BLE001 - any broker failure means no worker can be reached
            logger.warning("Ping to the Celery workers failed: %s", error)
            return []
        return sorted(name for reply in replies for name in reply)
    return []


def clip_statuses(clip_ids):
    """Return ``{clip_id: (status, failure_reason)}`` for the given ids."""
    rows = Clip.objects.filter(pk__in=clip_ids).values_list("pk", "status", "failure_reason")
    return {pk: (status, reason) for pk, status, reason in rows}


def wait_for_clips(clip_ids, timeout, poll_seconds=0.5, ping_every_seconds=15.0, on_tick=None):
    """Poll until none of ``clip_ids`` is pending, ``timeout`` passes or the workers vanish.

    Returns ``(statuses, reason)`` where ``reason`` is ``""`` when every clip
    finished, ``"timeout"`` or ``"no-worker"``.
    """
    deadline = time.monotonic() + timeout
    next_ping = time.monotonic() + ping_every_seconds
    while True:
        statuses = clip_statuses(clip_ids)
        pending = [pk for pk, (status, _reason) in statuses.items() if status == Clip.Status.PENDING]
        if on_tick is not None:
            on_tick(statuses)
        if not pending:
            return statuses, ""
        if time.monotonic() >= deadline:
            return statuses, "timeout"
        if time.monotonic() >= next_ping:
            if not ping_workers():
                return statuses, "no-worker"
            next_ping = time.monotonic() + ping_every_seconds
        time.sleep(poll_seconds)

