"""POST /api/v1/imports/: access (anonymous, not staff, key without the scope), limits, fields, imports."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from analytics.models import ImportRun
from assistant.models import ChatSession
from tests.analytics.imports.conftest import POWERPULSE, RATINGS
from tests.api.staff.conftest import bearer

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

URL = "/api/v1/imports/"


def _form(name: str = "powerpulse.json") -> dict[str, Any]:
    return {"file": SimpleUploadedFile(name, POWERPULSE.read_bytes())}


def test_anonymous_requests_get_401(client: Client) -> None:
    response = client.post(URL, _form())
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert ChatSession.objects.count() == 0


def test_signed_in_users_who_are_not_staff_get_403(client: Client) -> None:
    client.force_login(get_user_model().objects.create_user("visitor", password="pw-not-staff"))
    response = client.post(URL, _form())
    assert response.status_code == 403
    assert ChatSession.objects.count() == 0


def test_a_key_without_the_import_scope_gets_403_naming_it(make_key: Any) -> None:
    client = Client(**bearer(make_key("read", "export")))
    response = client.post(URL, _form())
    assert response.status_code == 403
    assert "'import' scope" in response.json()["detail"]
    assert ChatSession.objects.count() == 0


def test_a_key_with_the_scope_imports_a_form_upload(make_key: Any) -> None:
    client = Client(**bearer(make_key("import")))
    response = client.post(URL, _form())
    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["conversations"]["created"] == 3
    assert body["summary"]["skipped"] == {"bad_direction": 1, "no_messages": 1, "not_a_list": 1}
    run = ImportRun.objects.get(pk=body["run_id"])
    assert (run.via, run.status) == ("api", "done")
    again = client.post(URL, _form()).json()
    assert again["summary"]["conversations"]["unchanged"] == 3


def test_a_raw_body_with_its_format_in_the_query_is_imported(make_key: Any) -> None:
    client = Client(**bearer(make_key("import")))
    response = client.post(
        URL + "?format=jsonl&dry_run=true", RATINGS.read_bytes(), content_type="application/octet-stream"
    )
    assert response.status_code == 200
    summary = response.json()["summary"]
    assert summary["dry_run"] is True and summary["conversations"]["created"] == 4
    assert ChatSession.objects.count() == 0


def test_a_staff_session_may_import(admin_client: Client) -> None:
    response = admin_client.post(URL + "?format=fb-grouped", _form("export.txt"))
    assert response.status_code == 200
    assert ImportRun.objects.get().started_by.username == "admin"


@pytest.mark.parametrize(
    ("query", "field"),
    [("?format=xml", "format"), ("?dry_run=maybe", "dry_run"), ("?force=2", "force")],
)
def test_a_bad_option_is_a_400_naming_the_field(make_key: Any, query: str, field: str) -> None:
    client = Client(**bearer(make_key("import")))
    response = client.post(URL + query, _form())
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert ChatSession.objects.count() == 0


def test_a_form_without_a_file_is_a_400_naming_it(make_key: Any) -> None:
    client = Client(**bearer(make_key("import")))
    response = client.post(URL, {"format": "csv"})
    assert response.status_code == 400 and response.json()["field"] == "file"
    response = client.post(URL + "?format=csv", b"", content_type="text/csv")
    assert response.status_code == 400 and response.json()["field"] == "file"


def test_bodies_over_the_limit_get_413_naming_it(make_key: Any, settings: Any) -> None:
    settings.MAX_IMPORT_BYTES = 1024
    client = Client(**bearer(make_key("import")))
    raw = client.post(URL + "?format=fb-grouped", b"{" + b" " * 5000 + b"}", content_type="application/json")
    assert raw.status_code == 413
    assert raw.json()["code"] == "payload_too_large" and "MAX_IMPORT_BYTES (1,024 bytes" in raw.json()["detail"]
    settings.MAX_IMPORT_BYTES = 2048  # the ≈ 5 kB form is within Content-Length's slack: counted while read
    form = client.post(URL, _form())
    assert form.status_code == 413 and form.json()["field"] == "file"
    assert ChatSession.objects.count() == 0


def test_strict_answers_400_and_writes_nothing(make_key: Any) -> None:
    client = Client(**bearer(make_key("import")))
    response = client.post(URL + "?strict=true", _form())
    assert response.status_code == 400
    assert "nothing was written" in response.json()["detail"]
    assert ChatSession.objects.count() == 0


def test_only_post_is_allowed(make_key: Any) -> None:
    client = Client(**bearer(make_key("import")))
    assert client.get(URL).status_code == 405


def test_a_malformed_form_is_a_json_400_naming_the_file(make_key: Any, admin_client: Client) -> None:
    """An invalid boundary: Django's parser refuses it, read by the view (key) or the CSRF check (session)."""
    for client in (Client(**bearer(make_key("import"))), admin_client):
        response = client.post(URL, b"--\r\n", content_type="multipart/form-data; boundary=")
        assert response.status_code == 400
        assert response.json()["field"] == "file"
        assert response.json()["detail"].startswith("Unreadable form")
