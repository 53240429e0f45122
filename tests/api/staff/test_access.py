"""Who may call the staff endpoints: every endpoint against anonymous callers, a visitor's token,
signed-in users who are not staff, staff sessions, keys with and without the scope, expired,
revoked, unknown and malformed keys; and the per-key rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from tests.api.staff.conftest import ENDPOINTS, bearer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

READ = [path for path, scope in ENDPOINTS.items() if scope == "read"]
EXPORT = [path for path, scope in ENDPOINTS.items() if scope == "export"]
ALL = list(ENDPOINTS)


async def _status(client: AsyncClient, path: str, **options: Any) -> tuple[int, dict[str, Any], Any]:
    """Status, JSON body (errors) and headers; a streamed export is read to its end."""
    response = await client.get(path, **options)
    if response.streaming:
        async for _ in response.streaming_content:
            pass
        return response.status_code, {}, response
    return response.status_code, response.json(), response


def _unauthorized(status: int, body: dict[str, Any], response: Any, word: str | None = None) -> None:
    assert status == 401, body
    assert body["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    if word is not None:
        assert word in body["detail"]


@pytest.mark.parametrize("path", ALL)
async def test_anonymous_gets_401(path: str) -> None:
    _unauthorized(*await _status(AsyncClient(), path))


@pytest.mark.parametrize("path", ALL)
async def test_a_visitors_conversation_token_is_no_credential_here(path: str) -> None:
    token = "Hk2oVY3s3Wb4hQG9pEJ6NEkQ4q4D5l6kVdTKpZ2n0cE"  # shaped like a conversation token
    _unauthorized(*await _status(AsyncClient(), path, **bearer(token)))


@pytest.mark.parametrize("path", ALL)
async def test_a_signed_in_user_who_is_not_staff_gets_403(path: str) -> None:
    user = await get_user_model().objects.acreate_user("visitor", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    status, body, _ = await _status(client, path)
    assert status == 403
    assert body["code"] == "forbidden"


async def test_an_inactive_staff_users_session_counts_for_nothing() -> None:
    user = await get_user_model().objects.acreate_user("gone", password="pw", is_staff=True, is_active=False)
    client = AsyncClient()
    await client.aforce_login(user)
    _unauthorized(*await _status(client, "/api/v1/metrics/"))


@pytest.mark.parametrize("path", ALL)
async def test_a_staff_session_may_use_every_endpoint(staff_user, path: str) -> None:
    client = AsyncClient()
    await client.aforce_login(staff_user)
    status, _, _ = await _status(client, path)
    assert status == 200


@pytest.mark.parametrize("path", ALL)
async def test_a_key_with_the_scope_gets_200_and_one_without_gets_403_naming_it(make_key, path: str) -> None:
    scope = ENDPOINTS[path]
    other = "export" if scope == "read" else "read"
    allowed, refused = await _make(make_key, scope), await _make(make_key, other, "desk")
    status, _, _ = await _status(AsyncClient(), path, **bearer(allowed))
    assert status == 200
    status, body, _ = await _status(AsyncClient(), path, **bearer(refused))
    assert status == 403
    assert body["code"] == "forbidden"
    assert f"'{scope}' scope" in body["detail"]


async def _make(make_key: Any, *scopes: str, **options: bool) -> str:
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_key)(*scopes, **options)


@pytest.mark.parametrize("path", ALL)
@pytest.mark.parametrize("state", ["expired", "revoked"])
async def test_an_expired_or_revoked_key_gets_401_saying_which(make_key, path: str, state: str) -> None:
    key = await _make(make_key, "read", "export", **{state: True})
    _unauthorized(*await _status(AsyncClient(), path, **bearer(key)), word=state)


@pytest.mark.parametrize(
    "key",
    [
        "pk_abcdefgh_" + "A" * 43,  # well formed, never issued
        "pk_abcdefgh_short",
        "pk_",
        "pk_ABCDEFGH_" + "A" * 43,  # the prefix is lowercase
        "pk_abcdefgh_" + "A" * 43 + "extra",
        "pk_" + "x" * 500,
    ],
)
async def test_an_unknown_or_mangled_key_gets_401_unknown(key: str) -> None:
    _unauthorized(*await _status(AsyncClient(), "/api/v1/metrics/", **bearer(key)), word="unknown")


async def test_a_known_prefix_with_a_wrong_secret_is_unknown_not_revoked(make_key) -> None:
    key = await _make(make_key, "read", revoked=True)
    forged = key[:12] + ("B" if key[12] != "B" else "C") + key[13:]
    _unauthorized(*await _status(AsyncClient(), "/api/v1/metrics/", **bearer(forged)), word="unknown")


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Token pk_abc", "bearer", "Bearer  ", "pk_abcdefgh_x"]
)
async def test_a_malformed_authorization_header_gets_401(header: str) -> None:
    _unauthorized(*await _status(AsyncClient(), "/api/v1/metrics/", headers={"Authorization": header}))


def test_a_header_that_is_not_ascii_gets_401(db) -> None:
    response = Client().get(
        "/api/v1/metrics/", HTTP_AUTHORIZATION="Bearer pk_abcdefgh_\u00e9\u00e9".encode().decode("latin-1")
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_key_is_judged_by_its_scopes_even_with_a_staff_cookie(staff: Client, make_key) -> None:
    key = make_key("export")
    response = staff.get("/api/v1/metrics/", **bearer(key))
    assert response.status_code == 403
    assert "'read' scope" in response.json()["detail"]


def test_a_desk_only_key_may_read_nothing_yet(make_key) -> None:
    client = Client(**bearer(make_key("desk")))
    for path in ["/api/v1/metrics/", "/api/v1/sessions/", "/api/v1/usage/"]:
        assert client.get(path).status_code == 403


def test_other_methods_are_not_allowed(api: Client) -> None:
    response = api.post("/api/v1/metrics/", {}, content_type="application/json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_the_answer_is_json_whatever_accept_says(api: Client) -> None:
    response = api.get("/api/v1/metrics/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


# --- rate limit -----------------------------------------------------------------------------------
def test_a_key_over_its_rate_limit_gets_429_with_retry_after(settings, make_key, staff: Client) -> None:
    settings.API_KEY_RATE_LIMIT_PER_MINUTE = 3
    busy, other = Client(**bearer(make_key("read"))), Client(**bearer(make_key("read")))
    assert [busy.get("/api/v1/usage/").status_code for _ in range(3)] == [200, 200, 200]
    response = busy.get("/api/v1/usage/")
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert body["retry_after"] == int(response["Retry-After"])
    assert other.get("/api/v1/usage/").status_code == 200  # per key
    assert all(staff.get("/api/v1/usage/").status_code == 200 for _ in range(5))  # sessions are not limited


def test_a_limit_of_zero_turns_it_off(settings, api: Client) -> None:
    settings.API_KEY_RATE_LIMIT_PER_MINUTE = 0
    assert all(api.get("/api/v1/usage/").status_code == 200 for _ in range(5))
