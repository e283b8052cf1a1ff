"""A ZIP archive of one export, its data file and dataset card, encoded while the rows stream.

The card needs the final row counts, so it is written into the archive after
the data. A download cut short leaves an archive without its central
directory, which unzip tools reject, where a bare CSV would look complete.
"""

import json
import time
import zipfile
from pathlib import Path

from django.utils import timezone

from comparisons.exports.card import build_card, render_markdown
from comparisons.exports.files import card_paths

# Level 1 is zlib's fastest setting, chosen so that compressing costs little
# next to reading and encoding the rows.
COMPRESS_LEVEL = 1


class _Spool:
    """A write-only file object that keeps what ZipFile wrote until :meth:`drain` takes it.

    It has no ``tell``, so ZipFile writes a data descriptor after each member
    instead of seeking back to patch sizes, and nothing needs a whole member
    in memory.
    """

    def __init__(self):
        self._parts = []

    def write(self, data):
        self._parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def drain(self):
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _member_info(name):
    """Return the ZipInfo of a member written through ``ZipFile.open``, dated now and deflated.

    ``ZipFile.open(name, "w")`` would date the member 1980-01-01.
    """
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # Python 3.13 names the level compress_level; 3.11 and 3.12 keep it in a
    # private slot, which ZipFile.open reads.
    if hasattr(info, "compress_level"):
        info.compress_level = COMPRESS_LEVEL
    else:
        info._compresslevel = COMPRESS_LEVEL
    return info


def archive_chunks(rows, data_chunks, *, data_name, file_format, licence):
    """Yield the bytes of a ZIP archive holding ``data_name`` and its two card files.

    Parameters
    ----------
    rows : ExportRows
        The rows that ``data_chunks`` encodes. Their counts, complete once
        ``data_chunks`` is exhausted, go into the card.
    data_chunks : iterable of bytes
        The encoded data file, such as ``csv_chunks(rows.columns, rows)``.
    data_name : str
        Name of the data file inside the archive. The cards are named
        ``data_name + ".card.md"`` and ``".card.json"``, as beside a file
        written to disk.
    file_format : str
        Format named on the card.
    licence : str
        Licence named on the card.
    """
    spool = _Spool()
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        # The size is unknown when the member starts, so it gets ZIP64 fields
        # from the start and may pass 4 GiB.
        with archive.open(_member_info(data_name), "w", force_zip64=True) as member:
            for chunk in data_chunks:
                member.write(chunk)
                data = spool.drain()
                if data:
                    yield data

        card = build_card(
            rows, file_name=data_name, file_format=file_format, licence=licence, generated_at=timezone.now()
        )
        markdown_path, json_path = card_paths(Path(data_name))
        archive.writestr(json_path.name, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
        archive.writestr(markdown_path.name, render_markdown(card))
    yield spool.drain()
