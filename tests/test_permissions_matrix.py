"""Who may open what: every URL of Salon against six roles.

Roles: anonymous, a rater of cohort A, a rater of cohort B, a curator (staff
in "Curators"), a researcher (staff in "Researchers") and a superuser. The
groups are Salon's own (``comparisons.roles``). Every named route outside the
admin must have a row in :data:`MATRIX`, so a new page cannot ship without
deciding who may see it. The admin has a representative set of rows, and a
sweep that opens every admin route as anonymous and as a rater.

Expected values are HTTP status codes, or ``LOGIN`` / ``ADMIN_LOGIN`` for a
redirect to that login page.
"""

import json
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from comparisons.folder_imports import run_folder_import
from comparisons.models import Clip, Comparison, Export, FolderImport
from comparisons.roles import CURATORS, RESEARCHERS, sync_roles
from tests.factories import make_cohort, make_pool, make_rater, png_bytes

ANONYMOUS, RATER_A, RATER_B, CURATOR, RESEARCHER, SUPERUSER = ROLES = (
    "anonymous", "rater_a", "rater_b", "curator", "researcher", "superuser",
)
STAFF = (CURATOR, RESEARCHER, SUPERUSER)
LOGIN = "login"
ADMIN_LOGIN = "admin-login"


def everyone(status):
    return dict.fromkeys(ROLES, status)


def roles(default, **overrides):
    """Return an expectation for every role: ``default``, with some roles overridden."""
    expected = everyone(default)
    expected.update(overrides)
    return expected


@dataclass
class World:
    """The rows every request needs: two cohorts, one user per role, a clip file and an export."""

    cohort_a: object
    cohort_b: object
    users: dict
    export: object
    media_path: str
    comparison_of: dict = field(default_factory=dict)


def build_world(tmp_path, settings):
    sync_roles()
    cohort_a = make_cohort(pool=make_pool(n_images=4), name="Cohort A")
    cohort_b = make_cohort(pool=make_pool(n_images=4), name="Cohort B")
    user_model = get_user_model()
    curator = user_model.objects.create_user("curator-1", password="x", is_staff=True)
    curator.groups.add(django_group(CURATORS))
    researcher = user_model.objects.create_user("researcher-1", password="x", is_staff=True)
    researcher.groups.add(django_group(RESEARCHERS))
    users = {
        ANONYMOUS: None,
        RATER_A: make_rater(cohort_a, username="rater-a"),
        RATER_B: make_rater(cohort_b, username="rater-b"),
        CURATOR: curator,
        RESEARCHER: researcher,
        SUPERUSER: user_model.objects.create_superuser("admin-1", password="x"),
    }

    export_dir = tmp_path / "exports"
    export_dir.mkdir()
    settings.SALON = {**settings.SALON, "EXPORT_DIR": str(export_dir)}
    for name in ("export-1.csv", "export-1.csv.card.md", "export-1.csv.card.json"):
        (export_dir / name).write_text("{}\n")
    export = Export.objects.create(
        requested_by=researcher, format="csv", parameters={"cohorts": [cohort_a.slug]},
        status=Export.Status.FINISHED, file_name="export-1.csv",
    )
    clip = cohort_a.pool.clips.first()
    return World(cohort_a, cohort_b, users, export, clip.rendition.name)


def django_group(name):
    from django.contrib.auth.models import Group

    return Group.objects.get(name=name)


def served_comparison(world):
    """Return the id of a comparison served to rater A in cohort A."""
    left, right = world.cohort_a.pool.clips.all()[:2]
    return Comparison.objects.create(cohort=world.cohort_a, rater=world.users[RATER_A], left=left, right=right).pk


def vote_body(world):
    return {
        "data": json.dumps({"comparison": served_comparison(world), "choice": "left", "client_ms": 2000}),
        "content_type": "application/json",
    }


@dataclass(frozen=True)
class Row:
    """One route: the request to send and the expected response per role."""

    method: str
    url: object  # function World -> path
    expected: dict
    body: object = None  # function World -> keyword arguments of the request


MATRIX = {
    # Rater pages. Membership, not staff status, opens a cohort.
    "home": Row("GET", lambda w: reverse("home"), everyone(200)),
    "compare": Row("GET", lambda w: reverse("compare", args=[w.cohort_a.slug]),
                   roles(403, anonymous=LOGIN, rater_a=200)),
    "next_pair": Row("GET", lambda w: reverse("next_pair", args=[w.cohort_a.slug]),
                     roles(403, anonymous=401, rater_a=200)),
    "vote": Row("POST", lambda w: reverse("vote", args=[w.cohort_a.slug]),
                roles(403, anonymous=401, rater_a=201), body=vote_body),
    # The invite token is the capability: anyone holding the link may join.
    "join": Row("GET", lambda w: w.cohort_a.get_join_url(), everyone(200)),
    # Media files are public to whoever has the URL, as a front server would serve them.
    "media": Row("GET", lambda w: django_settings.MEDIA_URL + w.media_path, everyone(200)),
    # Accounts.
    "login": Row("GET", lambda w: reverse("login"), everyone(200)),
    "logout": Row("POST", lambda w: reverse("logout"), everyone(302)),
    "password_change": Row("GET", lambda w: reverse("password_change"), roles(200, anonymous=LOGIN)),
    "password_change_done": Row("GET", lambda w: reverse("password_change_done"), roles(200, anonymous=LOGIN)),
    "password_reset": Row("GET", lambda w: reverse("password_reset"), everyone(200)),
    "password_reset_done": Row("GET", lambda w: reverse("password_reset_done"), everyone(200)),
    "password_reset_confirm": Row("GET", lambda w: reverse("password_reset_confirm", args=["MQ", "set-password"]),
                                  everyone(200)),
    "password_reset_complete": Row("GET", lambda w: reverse("password_reset_complete"), everyone(200)),
    # Exports: researchers and superusers; an export stays with whoever asked for it.
    "exports:index": Row("GET", lambda w: reverse("exports:index"),
                         roles(403, anonymous=LOGIN, researcher=200, superuser=200)),
    "exports:download": Row("GET", lambda w: reverse("exports:download", args=[w.export.pk]),
                            roles(403, anonymous=LOGIN, researcher=200, superuser=200)),
    "exports:card_md": Row("GET", lambda w: reverse("exports:card_md", args=[w.export.pk]),
                           roles(403, anonymous=LOGIN, researcher=200, superuser=200)),
    "exports:card_json": Row("GET", lambda w: reverse("exports:card_json", args=[w.export.pk]),
                             roles(403, anonymous=LOGIN, researcher=200, superuser=200)),
    "exports:taste_models": Row("GET", lambda w: reverse("exports:taste_models", args=[w.cohort_a.slug]),
                                roles(403, anonymous=LOGIN, researcher=200, superuser=200)),
    # Scores: never raters, who would be biased by them.
    "scoring:leaderboard": Row("GET", lambda w: reverse("scoring:leaderboard", args=[w.cohort_a.slug]),
                               roles(200, anonymous=LOGIN, rater_a=403, rater_b=403)),
    # Admin, a representative set: staff only, then per model permission.
    "admin:index": Row("GET", lambda w: reverse("admin:index"),
                       roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:comparisons_cohort_changelist": Row(
        "GET", lambda w: reverse("admin:comparisons_cohort_changelist"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:comparisons_cohort_add": Row(
        "GET", lambda w: reverse("admin:comparisons_cohort_add"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN, researcher=403)),
    "admin:comparisons_cohort_change": Row(
        "GET", lambda w: reverse("admin:comparisons_cohort_change", args=[w.cohort_a.pk]),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:comparisons_cohort_delete": Row(
        "GET", lambda w: reverse("admin:comparisons_cohort_delete", args=[w.cohort_a.pk]),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN, researcher=403)),
    "admin:comparisons_membership_changelist": Row(
        "GET", lambda w: reverse("admin:comparisons_membership_changelist"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:comparisons_judgment_changelist": Row(
        "GET", lambda w: reverse("admin:comparisons_judgment_changelist"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:comparisons_clip_import": Row(
        "GET", lambda w: reverse("admin:comparisons_clip_import"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN, researcher=403)),
    "admin:comparisons_folderimport_changelist": Row(
        "GET", lambda w: reverse("admin:comparisons_folderimport_changelist"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:scoring_tastemodel_changelist": Row(
        "GET", lambda w: reverse("admin:scoring_tastemodel_changelist"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN)),
    "admin:comparisons_export_changelist": Row(
        "GET", lambda w: reverse("admin:comparisons_export_changelist"),
        roles(200, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN, curator=403)),
    # Accounts are for superusers only: staff roles cannot make themselves superusers.
    "admin:auth_user_changelist": Row(
        "GET", lambda w: reverse("admin:auth_user_changelist"),
        roles(403, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN, superuser=200)),
    "admin:auth_group_change": Row(
        "GET", lambda w: reverse("admin:auth_group_change", args=[django_group(CURATORS).pk]),
        roles(403, anonymous=ADMIN_LOGIN, rater_a=ADMIN_LOGIN, rater_b=ADMIN_LOGIN, superuser=200)),
}


def all_routes():
    """Yield ``(route, name, pattern)`` for every URL pattern, with namespaced names."""

    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace + (pattern.namespace + ":" if pattern.namespace else "")
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            else:
                yield prefix + str(pattern.pattern), namespace + (pattern.name or ""), pattern

    yield from walk(get_resolver().url_patterns, "", "")


def client_for(world, role):
    client = Client()
    if world.users[role] is not None:
        client.force_login(world.users[role])
    return client


def check_status(response, expected, where):
    if expected in (LOGIN, ADMIN_LOGIN):
        login_path = reverse("login") if expected == LOGIN else reverse("admin:login")
        assert response.status_code == 302, f"{where}: {response.status_code}, expected a redirect to {login_path}"
        assert response["Location"].startswith(login_path), f"{where}: redirected to {response['Location']}"
    else:
        assert response.status_code == expected, f"{where}: {response.status_code}, expected {expected}"


def test_every_route_has_a_matrix_row():
    names = {name for _route, name, _pattern in all_routes() if not name.startswith("admin:")}
    unnamed = sorted(route for route, name, _pattern in all_routes() if not name)

    assert unnamed == []
    assert names - set(MATRIX) == set(), "routes without a row in MATRIX"
    assert {name for name in MATRIX if not name.startswith("admin:")} - names == set(), "rows of removed routes"


def test_matrix_admin_rows_name_real_routes():
    names = {name for _route, name, _pattern in all_routes()}

    assert {name for name in MATRIX if name.startswith("admin:")} - names == set()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_permission_matrix(name, role, tmp_path, settings):
    world = build_world(tmp_path, settings)
    row = MATRIX[name]
    client = client_for(world, role)
    kwargs = row.body(world) if row.body else {}

    response = getattr(client, row.method.lower())(row.url(world), **kwargs)

    check_status(response, row.expected[role], f"{row.method} {name} as {role}")


# Placeholder values for admin route parameters, so that every admin route can be opened.
ADMIN_PARAMETERS = {"object_id": "1", "content_type_id": "1", "app_label": "comparisons", "url": "no-such-page/"}


def admin_paths():
    for route, name, pattern in all_routes():
        if not route.startswith("admin/"):
            continue
        groups = pattern.pattern.regex.groupindex
        if name and name != "admin:":
            try:
                yield name, reverse(name, kwargs={key: ADMIN_PARAMETERS[key] for key in groups})
                continue
            except Exception:
                pass
        # Unnamed routes (the object-id redirects, the catch-all): fill the parameters by hand.
        path = "/" + route
        for key, value in ADMIN_PARAMETERS.items():
            path = path.replace(f"<path:{key}>", value).replace(f"<int:{key}>", value)
        path = path.replace("(?P<url>.*)$", "no-such-page/")
        if "(?P<app_label>" in path:
            path = "/admin/comparisons/"
        yield name or route, path


@pytest.mark.django_db
@pytest.mark.parametrize("role", [ANONYMOUS, RATER_A])
def test_every_admin_route_needs_staff(role, tmp_path, settings):
    world = build_world(tmp_path, settings)
    client = client_for(world, role)
    opened = []

    for name, path in admin_paths():
        response = client.get(path)
        opened.append(path)
        if name == "admin:login":
            assert response.status_code == 200
            continue
        if name == "admin:logout":
            # Non-staff logging out of the admin are sent to its index, which sends them to the login.
            assert response.status_code == 302
            assert response["Location"] == reverse("admin:index")
            continue
        assert response.status_code in (302, 405), f"GET {path} ({name}) as {role}: {response.status_code}"
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("admin:login")), f"{path}: {response['Location']}"

    assert len(opened) > 60


# --- the admin import page's guards, from the outside -------------------------


def post_import(client, **data):
    return client.post(reverse("admin:comparisons_clip_import"), data)


@pytest.fixture
def curator_client(tmp_path, settings):
    world = build_world(tmp_path, settings)
    client = Client()
    client.force_login(world.users[CURATOR])
    return client


@pytest.fixture
def import_root(tmp_path, settings):
    root = tmp_path / "incoming"
    (root / "ok").mkdir(parents=True)
    (root / "ok" / "inside.png").write_bytes(png_bytes(40, 30))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_bytes(40, 30))
    (root / "link-out").symlink_to(outside, target_is_directory=True)
    settings.SALON = {**settings.SALON, "IMPORT_ROOTS": [str(root)]}
    return root, outside


@pytest.mark.django_db
@pytest.mark.parametrize("folder", ["OUTSIDE", "../outside", "link-out", "/etc"])
def test_import_folder_outside_roots_is_rejected(folder, curator_client, import_root):
    root, outside = import_root
    folder = str(outside) if folder == "OUTSIDE" else folder
    clips_before = Clip.objects.count()

    response = post_import(curator_client, folder=folder, pool="guards")

    assert response.status_code == 200
    assert "folder" in response.context["form"].errors
    assert "import roots" in " ".join(response.context["form"].errors["folder"])
    assert Clip.objects.count() == clips_before


@pytest.mark.django_db
def test_import_folder_inside_roots_is_accepted(curator_client, import_root):
    response = post_import(curator_client, folder="ok", pool="guards")
    job = FolderImport.objects.get()
    assert response.status_code == 302
    assert run_folder_import(job.pk)["imported"] == 1

    assert list(Clip.objects.filter(pools__name="guards").values_list("original_name", flat=True)) == ["inside.png"]


@pytest.mark.django_db
@pytest.mark.parametrize("size", [3_000, 200_000])
def test_import_upload_over_size_limit_is_rejected(size, curator_client, settings):
    """Just over the limit fails form validation; far over it is refused before the body is parsed."""
    settings.SALON = {**settings.SALON, "MAX_UPLOAD_BYTES": 2_000}
    upload = SimpleUploadedFile("big.png", png_bytes(64, 64) + b"\0" * size, content_type="image/png")
    clips_before = Clip.objects.count()

    response = post_import(curator_client, files=upload, pool="guards")

    assert response.status_code == 200
    assert "MAX_UPLOAD_BYTES" in response.content.decode()
    assert Clip.objects.count() == clips_before


@pytest.mark.django_db
def test_import_image_over_pixel_limit_fails(curator_client, settings):
    settings.SALON = {**settings.SALON, "MAX_IMAGE_PIXELS": 100}
    upload = SimpleUploadedFile("wide.png", png_bytes(40, 30), content_type="image/png")

    response = post_import(curator_client, files=upload, pool="guards")

    assert response.status_code == 200
    assert not Clip.objects.filter(original_name="wide.png").exclude(status=Clip.Status.FAILED).exists()
    assert "MAX_IMAGE_PIXELS" in response.content.decode()
