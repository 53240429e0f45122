"""Signed visitor identities: the canonical signed form, its maximum age, and what `hello` does with it."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from assistant.access import identity_payload, identity_signature, verify_identity
from assistant.models import ChatSession
from tests.support.chat import ChatClient, open_client

ROOT = Path(__file__).resolve().parents[2]
WIDGET_DOC = ROOT / "docs" / "widget.md"
SECRET = "s3cret"


def signed(secret: str = SECRET, **fields: Any) -> dict[str, Any]:
    """An identity as a host site sends it, signed with `secret` over every field."""
    identity: dict[str, Any] = {
        "user_id": "42",
        "name": "Ada",
        "email": "ada@example.com",
        "user_type": "client",
        "issued_at": int(time.time()),
    }
    identity.update(fields)
    identity["signature"] = identity_signature(
        secret,
        user_id=identity["user_id"],
        name=identity.get("name", ""),
        email=identity.get("email", ""),
        user_type=identity.get("user_type", "client"),
        issued_at=identity["issued_at"],
    )
    return identity


async def session_of(welcome: dict[str, Any]) -> ChatSession:
    return await database_sync_to_async(ChatSession.objects.get)(public_id=welcome["session_id"])


async def hello_with(identity: dict[str, Any]) -> tuple[ChatClient, dict[str, Any]]:
    """`hello` with `identity`; after a welcome, one message, which writes the session's row."""
    client, ok, code = await open_client()
    assert ok, f"connection refused with {code}"
    await client.send({"type": "hello", "identity": identity})
    answer = await client.recv()
    if answer["type"] == "welcome":
        await client.say("Hello", "c-1")
    return client, answer


# --- the canonical form -----------------------------------------------------------------------
def test_identity_payload_is_the_versioned_newline_joined_fields_in_fixed_order() -> None:
    payload = identity_payload(user_id="42", name="Ada", email="ada@example.com", user_type="client", issued_at=7)
    assert payload == "parley-identity-v1\n42\nclient\nAda\nada@example.com\n7"


def test_identity_signature_is_hex_hmac_sha256_of_the_utf8_payload() -> None:
    expected = hmac.new(
        b"k", "parley-identity-v1\nz\xfcrich\nprovider\nJos\xe9\n\n1700000000".encode(), hashlib.sha256
    ).hexdigest()
    assert (
        identity_signature(
            "k", user_id="z\xfcrich", name="Jos\xe9", email="", user_type="provider", issued_at=1700000000
        )
        == expected
    )


# --- verify_identity --------------------------------------------------------------------------
def test_a_fully_signed_fresh_identity_is_verified(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    identity = verify_identity(signed())
    assert identity is not None
    assert (identity.user_id, identity.name, identity.email, identity.user_type) == (
        "42",
        "Ada",
        "ada@example.com",
        "client",
    )


def test_omitted_fields_are_signed_as_their_stored_defaults(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    issued_at = int(time.time())
    identity = {
        "user_id": "7",
        "issued_at": issued_at,
        "signature": identity_signature(
            SECRET, user_id="7", name="", email="", user_type="client", issued_at=issued_at
        ),
    }
    verified = verify_identity(identity)
    assert verified is not None and (verified.user_type, verified.name, verified.email) == ("client", "", "")


@pytest.mark.parametrize(
    ("field", "forged"),
    [("name", "Mallory"), ("email", "mallory@evil.example"), ("user_type", "provider"), ("user_id", "43")],
)
def test_changing_any_signed_field_invalidates_the_signature(settings, field: str, forged: str) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    identity = signed()
    identity[field] = forged
    assert verify_identity(identity) is None


def test_an_identity_with_a_field_outside_the_signed_set_is_refused(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    assert verify_identity(dict(signed(), role="admin")) is None


def test_an_identity_without_issued_at_is_refused(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    identity = signed()
    del identity["issued_at"]
    assert verify_identity(identity) is None


def test_a_field_holding_a_newline_is_refused_even_when_signed_over(settings) -> None:
    # "Ada\nx" and an email "x\n..." would otherwise sign the same text as other identities.
    settings.WIDGET_IDENTITY_SECRET = SECRET
    identity = signed(name="Ada\nadmin")
    assert verify_identity(identity) is None


def test_an_identity_signed_just_inside_the_maximum_age_is_accepted_and_just_outside_refused(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    settings.WIDGET_IDENTITY_MAX_AGE_S = 600
    now = time.time()
    assert verify_identity(signed(issued_at=int(now) - 590), now=now) is not None
    assert verify_identity(signed(issued_at=int(now) - 610), now=now) is None


def test_an_identity_issued_far_in_the_future_is_refused(settings) -> None:
    # A future issued_at would stretch the signature's life past the maximum age.
    settings.WIDGET_IDENTITY_SECRET = SECRET
    now = time.time()
    assert verify_identity(signed(issued_at=int(now) + 60), now=now) is not None
    assert verify_identity(signed(issued_at=int(now) + 3600), now=now) is None


@pytest.mark.parametrize("signature", ["é" * 64, "\ud800" * 64, "zz" * 32, "ab" * 31, ""])
def test_a_malformed_signature_is_an_invalid_signature(settings, signature: str) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    assert verify_identity(dict(signed(), signature=signature)) is None


def test_a_signature_in_upper_case_hex_is_accepted(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    identity = signed()
    assert verify_identity(dict(identity, signature=identity["signature"].upper())) is not None


def test_a_field_with_a_lone_surrogate_is_an_invalid_identity(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    identity = signed()
    assert verify_identity(dict(identity, name="Ada\ud800")) is None


# --- through `hello` (the findings of issue 13, item 10) ----------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_forged_name_email_and_user_type_with_a_user_id_only_signature_are_refused(settings) -> None:
    """Issue 13 item 10: a valid signature for `u1` let the page set any name, email and user_type."""
    settings.WIDGET_IDENTITY_SECRET = SECRET
    user_id_only = hmac.new(SECRET.encode(), b"u1", hashlib.sha256).hexdigest()
    forged = {
        "user_id": "u1",
        "name": "Mallory",
        "email": "mallory@evil.example",
        "user_type": "provider",
        "signature": user_id_only,
    }
    client, welcome = await hello_with(forged)
    assert welcome["type"] == "welcome"
    session = await session_of(welcome)
    assert (session.user_type, session.external_user_id, session.external_user_name, session.external_user_email) == (
        "anonymous",
        "",
        "",
        "",
    )
    await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_a_fully_signed_identity_is_stored_with_every_signed_field(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    client, welcome = await hello_with(signed(user_type="provider"))
    session = await session_of(welcome)
    assert (session.user_type, session.external_user_id, session.external_user_name, session.external_user_email) == (
        "provider",
        "42",
        "Ada",
        "ada@example.com",
    )
    await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_expired_identity_signature_is_refused_and_the_visitor_is_anonymous(settings) -> None:
    """Issue 13 item 10: signatures never expired."""
    settings.WIDGET_IDENTITY_SECRET = SECRET
    settings.WIDGET_IDENTITY_MAX_AGE_S = 3600
    client, welcome = await hello_with(signed(issued_at=int(time.time()) - 2 * 86400))
    assert welcome["type"] == "welcome"
    assert (await session_of(welcome)).user_type == "anonymous"
    await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_expired_identity_signature_closes_with_4403_when_identity_is_required(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    settings.WIDGET_IDENTITY_REQUIRED = True
    settings.WIDGET_IDENTITY_MAX_AGE_S = 3600
    client, ok, _ = await open_client()
    assert ok
    await client.send({"type": "hello", "identity": signed(issued_at=int(time.time()) - 2 * 86400)})
    with pytest.raises(ConnectionError):
        await client.recv()
    assert client.close_code == 4403
    assert await database_sync_to_async(ChatSession.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_non_ascii_identity_signature_makes_the_visitor_anonymous_without_internal_error(
    settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 item 1: a non-ASCII signature raised TypeError in compare_digest (internal_error)."""
    settings.WIDGET_IDENTITY_SECRET = SECRET
    client, welcome = await hello_with(dict(signed(), signature="é" * 64))
    assert welcome["type"] == "welcome", welcome
    assert (await session_of(welcome)).user_type == "anonymous"
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
    await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("drain_replies")
async def test_an_unsigned_extra_identity_field_is_refused_with_invalid_field(settings) -> None:
    settings.WIDGET_IDENTITY_SECRET = SECRET
    client, frame = await hello_with(dict(signed(), role="admin"))
    assert (frame["type"], frame["code"], frame["field"]) == ("error", "invalid_field", "identity.role")
    await client.close()


# --- the snippets in docs/widget.md -------------------------------------------------------------
def doc_snippet(language: str) -> str:
    """The one ```language block of the identity section of docs/widget.md."""
    text = WIDGET_DOC.read_text(encoding="utf-8")
    section = text.split("## Signed-in visitors (identity)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, f"expected one {language} snippet in the identity section, found {len(blocks)}"
    return blocks[0]


SNIPPET_USER = {"user_id": "42", "name": "Zoë Ünal", "email": "zoe@example.com", "user_type": "provider"}


def check_snippet_output(identity: dict[str, Any], secret: str) -> None:
    """A snippet's identity carries the user's fields, a current issued_at and a signature Parley accepts."""
    assert {key: identity[key] for key in SNIPPET_USER} == SNIPPET_USER
    assert abs(int(identity["issued_at"]) - time.time()) < 60
    expected = identity_signature(secret, **SNIPPET_USER, issued_at=int(identity["issued_at"]))
    assert identity["signature"] == expected


def test_the_python_snippet_in_widget_md_signs_an_identity_parley_accepts(settings) -> None:
    secret = "doc-secret-ß"
    namespace: dict[str, Any] = {
        "WIDGET_IDENTITY_SECRET": secret,
        "user": type("User", (), {"id": 42, "get_full_name": lambda self: "Zoë Ünal", "email": "zoe@example.com"})(),
        "USER_TYPE": "provider",
    }
    exec(doc_snippet("python"), namespace)  # our own documentation
    identity = namespace["identity"]
    check_snippet_output(identity, secret)
    settings.WIDGET_IDENTITY_SECRET = secret
    assert verify_identity(identity) is not None


NODE = shutil.which("node")
PHP = shutil.which("php")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_node_snippet_in_widget_md_signs_an_identity_parley_accepts(settings) -> None:
    import json

    secret = "doc-secret-ß"
    program = (
        'const user = { id: 42, name: "Zoë Ünal", email: "zoe@example.com" };\n'
        'const USER_TYPE = "provider";\n' + doc_snippet("js") + "\nprocess.stdout.write(JSON.stringify(identity));\n"
    )
    result = subprocess.run(
        [NODE, "-e", program],
        env={"WIDGET_IDENTITY_SECRET": secret, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    identity = json.loads(result.stdout)
    check_snippet_output(identity, secret)
    settings.WIDGET_IDENTITY_SECRET = secret
    assert verify_identity(identity) is not None


@pytest.mark.skipif(PHP is None, reason="php is not installed")
def test_the_php_snippet_in_widget_md_signs_an_identity_parley_accepts(settings) -> None:
    import json

    secret = "doc-secret-ß"
    program = (
        '$user = (object) ["id" => 42, "name" => "Zoë Ünal", "email" => "zoe@example.com"];\n'
        '$USER_TYPE = "provider";\n' + doc_snippet("php") + "\necho json_encode($identity);\n"
    )
    result = subprocess.run(
        [PHP, "-r", program],
        env={"WIDGET_IDENTITY_SECRET": secret, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    identity = json.loads(result.stdout)
    check_snippet_output(identity, secret)
    settings.WIDGET_IDENTITY_SECRET = secret
    assert verify_identity(identity) is not None
