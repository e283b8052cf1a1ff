"""URL routes of the benchmark server: Salon's routes plus the floor endpoint.

The floor endpoint does the least a vote could do: one INSERT in one
transaction behind the same middleware and server. The benchmark divides the
vote figures by the floor's, so that its results show how much the vote path
costs above that floor on the same machine, whatever the machine is.
"""

import time

from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from taste_site.urls import urlpatterns as salon_urlpatterns

FLOOR_TABLE = "bench_floor"


def create_floor_table():
    """Create the floor endpoint's table in the benchmark database, if missing."""
    key = "BIGSERIAL PRIMARY KEY" if connection.vendor == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (id {key}, run VARCHAR(40) NOT NULL, created DOUBLE PRECISION NOT NULL)"
        )


# Exempt from CSRF because the load generator sends bare POSTs; this module is
# mounted only by bench_settings, never by Salon's own URL configuration.
@csrf_exempt
@require_POST
def floor(request):
    run = request.headers.get("X-Bench-Run", "")[:40]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {FLOOR_TABLE} (run, created) VALUES (%s, %s)", [run, time.time()])
    return HttpResponse(status=204)


urlpatterns = [path("bench/floor/", floor, name="bench_floor"), *salon_urlpatterns]
