"""kombu's filesystem transport with atomic message writes.

kombu 5.7's filesystem channel creates the message file under its final name
and only then writes the payload, while a consumer moves any file with that
name out of the queue folder without taking the lock. A consumer polling at
that moment reads an empty or partial file, fails to decode it, and the
message is lost. Writing under a temporary name and renaming it into place
makes a message appear whole or not at all (rename is atomic on POSIX within
one file system).
"""

import os
import tempfile

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        final_name = os.path.join(self.data_folder_out, self._message_name(queue))
        # The temporary name does not end in ".<queue>.msg", so no consumer
        # picks it up before the rename.
        descriptor, temporary = tempfile.mkstemp(dir=self.data_folder_out, prefix=".incoming-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final_name)
        except OSError as exc:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise ChannelError(f"Cannot add message file {final_name!r} to the queue folder") from exc

    @staticmethod
    def _message_name(queue):
        import uuid
        from time import monotonic

        # Same pattern as kombu's own names: consumers sort on the leading
        # millisecond counter and match on the ".<queue>.msg" suffix.
        return f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"


class Transport(filesystem.Transport):
    Channel = Channel
