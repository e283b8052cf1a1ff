"""Serve uploaded media with HTTP range requests.

Browsers fetch video in byte ranges and need ``206 Partial Content`` to seek
and to loop; ``django.views.static.serve`` always answers the whole file. In
production a front server usually serves ``MEDIA_ROOT`` and this view is off
(``SALON_SERVE_MEDIA=0``).
"""

import mimetypes
import re
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.utils._os import safe_join
from django.views.decorators.http import require_safe

RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header, size):
    """Return ``(start, end)`` inclusive for a single-range header, or None.

    Raise ValueError when the range cannot be satisfied.
    """
    match = RANGE_PATTERN.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range outside the file")
    return start, min(end, size - 1)


class _RangeFile:
    """A file object that stops after ``length`` bytes, for FileResponse."""

    def __init__(self, handle, length, block_size=64 * 1024):
        self.handle = handle
        self.remaining = length
        self.block_size = block_size

    def __iter__(self):
        while self.remaining > 0:
            chunk = self.handle.read(min(self.block_size, self.remaining))
            if not chunk:
                break
            self.remaining -= len(chunk)
            yield chunk

    def close(self):
        self.handle.close()


@require_safe
def serve_media(request, path):
    try:
        full_path = Path(safe_join(settings.MEDIA_ROOT, path))
    except Exception:
        raise Http404("Invalid media path.") from None
    if not full_path.is_file():
        raise Http404("Media file not found.")

    size = full_path.stat().st_size
    content_type = mimetypes.guess_type(full_path.name)[0] or "application/octet-stream"
    header = request.headers.get("Range", "")
    try:
        byte_range = parse_range(header, size) if header else None
    except ValueError:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response

    if byte_range is None:
        response = FileResponse(full_path.open("rb"), content_type=content_type)
    else:
        start, end = byte_range
        handle = full_path.open("rb")
        handle.seek(start)
        response = FileResponse(_RangeFile(handle, end - start + 1), status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return response
