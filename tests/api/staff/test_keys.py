"""API keys: their format, hashed at rest, checked, touched at most once a minute; the `api_key`
command (create, list, revoke) and the admin (the whole key shown once, at creation)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from api import keys
from api.models import ApiKey
from tests.api.staff.conftest import bearer

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

KEY = re.compile(r"pk_[a-z0-9]{8}_[A-Za-z0-9]{43}")


def _stored_text(key: ApiKey) -> str:
    return " ".join(str(value) for value in ApiKey.objects.filter(pk=key.pk).values().first().values())


def test_a_key_has_the_documented_format_and_only_the_hash_of_its_secret_is_stored() -> None:
    key, whole = keys.key_create(name="CRM sync", scopes=["export", "read", "read"])
    assert KEY.fullmatch(whole)
    prefix, secret = whole[3:11], whole[12:]
    assert key.prefix == prefix
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert key.scopes == ["read", "export"]  # registry order, once each
    assert secret not in _stored_text(key) and whole not in _stored_text(key)
    other = keys.key_create(name="other", scopes=["read"])[1]
    assert other[12:] != secret and other[3:11] != prefix


def test_the_check_tells_unknown_revoked_and_expired_apart() -> None:
    key, whole = keys.key_create(name="k", scopes=["read"])
    principal = keys.key_check(whole)
    assert (principal.key_id, principal.scopes, principal.name) == (key.pk, frozenset({"read"}), "k")
    with pytest.raises(keys.KeyRefused) as refused:
        keys.key_check(whole[:-1] + ("a" if whole[-1] != "a" else "b"))
    assert refused.value.reason == "unknown"
    ApiKey.objects.filter(pk=key.pk).update(expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(keys.KeyRefused) as refused:
        keys.key_check(whole)
    assert refused.value.reason == "expired"
    keys.key_revoke(prefix=key.prefix)
    with pytest.raises(keys.KeyRefused) as refused:
        keys.key_check(whole)
    assert refused.value.reason == "revoked"


@pytest.mark.parametrize(
    ("name", "scopes", "problem"),
    [("", ["read"], "name"), ("x" * 101, ["read"], "name"), ("k", [], "scope"), ("k", ["write"], "write")],
)
def test_a_key_needs_a_name_and_known_scopes(name: str, scopes: list[str], problem: str) -> None:
    with pytest.raises(keys.KeyProblem, match=problem):
        keys.key_create(name=name, scopes=scopes)
    assert not ApiKey.objects.exists()


def test_last_used_is_written_at_most_once_a_minute(make_key) -> None:
    whole = make_key("read")
    client = Client(**bearer(whole))
    t0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    def used_at(at: datetime) -> datetime | None:
        with time_machine.travel(at, tick=False):
            assert client.get("/api/v1/usage/").status_code == 200
        return ApiKey.objects.get().last_used_at

    assert used_at(t0) == t0
    assert used_at(t0 + timedelta(seconds=30)) == t0  # no write within the minute
    assert used_at(t0 + timedelta(seconds=59)) == t0
    assert used_at(t0 + timedelta(seconds=61)) == t0 + timedelta(seconds=61)


# --- the command ----------------------------------------------------------------------------------
def _command(*args: str) -> str:
    out = StringIO()
    call_command("api_key", *args, stdout=out)
    return out.getvalue()


def test_the_command_creates_a_key_prints_it_once_lists_and_revokes_it(staff_user) -> None:
    out = _command("create", "--name", "Data team", "--scopes", "read,export", "--expires-in-days", "30",
                   "--user", "staff")  # fmt: skip
    whole = KEY.search(out).group(0)
    key = ApiKey.objects.get()
    assert (key.name, key.scopes, key.created_by) == ("Data team", ["read", "export"], staff_user)
    assert timedelta(days=29, hours=23) < key.expires_at - key.created_at <= timedelta(days=30)
    assert "shown only this once" in out
    assert Client(**bearer(whole)).get("/api/v1/metrics/").status_code == 200

    listing = _command("list")
    assert f"pk_{key.prefix}_…" in listing and "Data team" in listing and "read,export" in listing
    assert whole[12:] not in listing and "active" in listing

    revoked = _command("revoke", key.prefix)
    assert f"Revoked pk_{key.prefix}_…" in revoked
    response = Client(**bearer(whole)).get("/api/v1/metrics/")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert "revoked" in _command("list")


def test_the_quiet_command_prints_only_the_key() -> None:
    out = _command("create", "--name", "script", "--scopes", "read", "-q")
    assert KEY.fullmatch(out.strip())
    assert ApiKey.objects.get().expires_at is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "k", "--scopes", "read,write"], "write"),
        (["create", "--name", "k", "--scopes", ","], "at least one scope"),
        (["create", "--name", "k", "--scopes", "read", "--expires-in-days", "0"], "expires-in-days"),
        (["create", "--name", "k", "--scopes", "read", "--user", "nobody"], "nobody"),
        (["revoke", "zzzzzzzz"], "No API key"),
    ],
)
def test_the_command_refuses_bad_input_with_a_message(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _command(*args)
    assert not ApiKey.objects.exists()


def test_revoking_accepts_the_whole_key_too(make_key) -> None:
    whole = make_key("read")
    _command("revoke", whole)
    assert ApiKey.objects.get().revoked_at is not None


# --- the admin ------------------------------------------------------------------------------------
@pytest.fixture
def admin(db) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_shows_a_new_key_once_and_keeps_only_its_hash(admin: Client) -> None:
    response = admin.post(
        "/admin/api/apikey/add/",
        {"name": "CRM", "scopes": ["read", "export"], "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.redirect_chain == [("/admin/api/apikey/", 302)]
    whole = KEY.search(response.content.decode()).group(0)  # on the page after saving
    key = ApiKey.objects.get()
    assert (key.name, key.scopes, key.created_by.username) == ("CRM", ["read", "export"], "root")
    assert key.secret_hash == hashlib.sha256(whole[12:].encode()).hexdigest()
    assert Client(**bearer(whole)).get("/api/v1/metrics/").status_code == 200
    # Never again: not in the list, not on the key's page.
    for page in ("/admin/api/apikey/", f"/admin/api/apikey/{key.pk}/change/"):
        html = admin.get(page).content.decode()
        assert whole[12:] not in html and f"pk_{key.prefix}_" in html


def test_the_admin_refuses_an_expiry_in_the_past_and_no_scope(admin: Client) -> None:
    response = admin.post(
        "/admin/api/apikey/add/", {"name": "CRM", "scopes": [], "expires_at_0": "2020-01-01", "expires_at_1": "10:00"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"scopes", "expires_at"}
    assert not ApiKey.objects.exists()


def test_a_key_cannot_be_edited_or_deleted_in_the_admin_only_revoked(admin: Client, make_key) -> None:
    whole = make_key("read")
    key = ApiKey.objects.get()
    admin.post(f"/admin/api/apikey/{key.pk}/change/", {"name": "renamed", "scopes": ["read", "export", "desk"]})
    key.refresh_from_db()
    assert (key.name, key.scopes) == ("test", ["read"])
    assert admin.post(f"/admin/api/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin.post(
        "/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.pk], "index": 0}, follow=True
    )
    assert "Revoked 1 API key" in response.content.decode()
    assert Client(**bearer(whole)).get("/api/v1/metrics/").status_code == 401
