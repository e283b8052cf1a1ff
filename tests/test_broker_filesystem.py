"""The embedded broker hands a consumer whole messages only."""

import threading

from kombu import Connection

import taste_site.celery  # noqa: F401  (installs the "filesystem" alias)
from taste_site.broker import Transport

MESSAGES = 400
PAYLOAD_BYTES = 256 * 1024


def connection(folder):
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    return Connection("filesystem://", transport_options=options)


def test_filesystem_alias_resolves_to_atomic_transport(tmp_path):
    with connection(tmp_path) as conn:
        assert isinstance(conn.transport, Transport)


def test_consumer_polling_during_writes_gets_every_message_whole(tmp_path):
    """A reader polling as fast as it can never reads a half-written file."""
    received, errors = [], []
    done = threading.Event()

    def consume():
        try:
            with connection(tmp_path) as conn:
                queue = conn.SimpleQueue("race")
                while len(received) < MESSAGES and not done.is_set():
                    try:
                        message = queue.get(timeout=0.01)
                    except queue.Empty:
                        continue
                    except Exception as error:  # a decode error is what the test looks for
                        errors.append(repr(error))
                        continue
                    received.append(message.payload)
                    message.ack()
        except Exception as error:  # reported by the assertions instead of dying silently
            errors.append("reader stopped: %r" % error)

    # The queue is declared before the reader starts: kombu writes its
    # binding table non-atomically too, and this test is about messages.
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("race")
        reader = threading.Thread(target=consume)
        reader.start()
        try:
            for number in range(MESSAGES):
                queue.put({"n": number, "blob": "x" * PAYLOAD_BYTES})
            reader.join(timeout=120)
        finally:
            done.set()
            reader.join(timeout=10)

    assert errors == []
    assert sorted(item["n"] for item in received) == list(range(MESSAGES))
    assert all(len(item["blob"]) == PAYLOAD_BYTES for item in received)
    assert list(tmp_path.glob(".incoming-*")) == []
