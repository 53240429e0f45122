"""The staff upload page: who may use it, the size limit, a bad field, and an import through it."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from analytics.models import ImportRun
from assistant.models import ChatSession
from tests.analytics.imports.conftest import POWERPULSE

pytestmark = [pytest.mark.django_db, pytest.mark.backends]

URL = "/admin/chat-analytics/imports/"


def _upload(name: str = "powerpulse.json", content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, POWERPULSE.read_bytes() if content is None else content)


def test_anonymous_visitors_are_sent_to_the_login(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]
    response = client.post(URL, {"file": _upload()})
    assert response.status_code == 302
    assert ChatSession.objects.count() == 0


def test_signed_in_users_who_are_not_staff_are_refused(client: Client) -> None:
    user = get_user_model().objects.create_user("visitor", password="pw-not-staff")
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"file": _upload()}).status_code == 403
    assert ChatSession.objects.count() == 0


def test_staff_import_a_file_and_see_its_summary_and_the_run(admin_client: Client) -> None:
    response = admin_client.post(URL, {"file": _upload(), "format": "auto", "dry_run": ""})
    assert response.status_code == 200
    summary = response.context["summary"]
    assert summary["conversations"]["created"] == 3 and summary["messages"] == 10
    assert summary["skipped"] == {"bad_direction": 1, "no_messages": 1, "not_a_list": 1}
    assert ChatSession.objects.filter(source="import:fb-grouped").count() == 3
    run = ImportRun.objects.get()
    assert (run.via, run.filename, run.started_by.username) == ("upload", "powerpulse.json", "admin")
    page = admin_client.get(URL)
    assert page.status_code == 200
    assert b"powerpulse.json" in page.content
    assert "script-src" in page["Content-Security-Policy"]
    assert b"<script>" not in page.content


def test_a_dry_run_upload_writes_no_session(admin_client: Client) -> None:
    response = admin_client.post(URL, {"file": _upload(), "format": "fb-grouped", "dry_run": "on"})
    assert response.status_code == 200
    assert response.context["summary"]["dry_run"] is True
    assert ChatSession.objects.count() == 0


def test_a_bad_format_is_a_400_naming_the_field(admin_client: Client, caplog: Any) -> None:
    response = admin_client.post(URL, {"file": _upload(), "format": "xml"})
    assert response.status_code == 400
    assert response.context["error"]["field"] == "format"
    assert "format must be auto or one of fb-grouped, jsonl, csv" in response.context["error"]["detail"]
    assert [r.levelname for r in caplog.records if "Import upload refused" in r.getMessage()] == ["WARNING"]
    response = admin_client.post(URL, {"format": "csv"})
    assert response.status_code == 400 and response.context["error"]["field"] == "file"


def test_a_declared_body_over_the_limit_is_a_413_naming_it(admin_client: Client, settings: Any) -> None:
    settings.MAX_IMPORT_BYTES = 1024
    big = _upload(content=b"{" + b" " * 200_000 + b"}")
    response = admin_client.post(URL, {"file": big})
    assert response.status_code == 413
    assert "MAX_IMPORT_BYTES (1,024 bytes" in response.context["error"]["detail"]
    assert ChatSession.objects.count() == 0


def test_a_file_over_the_limit_inside_the_declared_slack_is_counted_and_refused(
    admin_client: Client, settings: Any
) -> None:
    settings.MAX_IMPORT_BYTES = 2048  # the file (≈ 5 kB) is within Content-Length's slack for the form
    response = admin_client.post(URL, {"file": _upload()})
    assert response.status_code == 413
    assert response.context["error"]["field"] == "file"
    assert ChatSession.objects.count() == 0


def test_a_missing_csrf_token_is_refused(settings: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    admin = get_user_model().objects.create_superuser("boss", password="pw-boss-1234")
    client.force_login(admin)
    response = client.post(URL, {"file": _upload()})
    assert response.status_code == 403
    assert ChatSession.objects.count() == 0
