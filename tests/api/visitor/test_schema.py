"""The OpenAPI schema describes the visitor API exactly: every answer it gives conforms to it.

A scenario calls every visitor operation, with good and bad input, and each response (status,
content type, body) is checked against what `/api/v1/schema/` declares for it. schemathesis
fuzzes the same schema in `make test`; this pins the shapes the contract tests rely on.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import jsonschema
import pytest

from tests.api.visitor.client import ApiClient, Reply
from tests.api.visitor.conftest import BASE, start_conversation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]

OPERATIONS = {
    ("post", "/api/v1/conversations/"): "conversations_create",
    ("get", "/api/v1/conversations/{conversation_id}/"): "conversation_read",
    ("get", "/api/v1/conversations/{conversation_id}/messages/"): "conversation_messages_list",
    ("post", "/api/v1/conversations/{conversation_id}/messages/"): "conversation_messages_create",
    ("post", "/api/v1/conversations/{conversation_id}/rating/"): "conversation_rating_create",
    ("post", "/api/v1/conversations/{conversation_id}/handoff/"): "conversation_handoff_create",
    ("post", "/api/v1/conversations/{conversation_id}/end/"): "conversation_end",
    ("post", "/api/v1/messages/{message_id}/feedback/"): "message_feedback_create",
}


def json_schema(node: Any, components: dict[str, Any]) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: references inlined, `nullable` as a null type."""
    if isinstance(node, list):
        return [json_schema(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    converted = {key: json_schema(value, components) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class Contract:
    """The schema, and a check of responses against it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.components = schema["components"]["schemas"]
        self.checked: set[tuple[str, str, int]] = set()

    def template(self, path: str) -> str:
        for candidate in self.schema["paths"]:
            pattern = re.sub(r"\{[^}]+\}", "[^/]+", candidate)
            if re.fullmatch(pattern, path):
                return candidate
        raise AssertionError(f"{path} is not in the schema")

    def check(self, method: str, path: str, reply: Reply) -> None:
        template = self.template(path)
        responses = self.schema["paths"][template][method]["responses"]
        assert str(reply.status) in responses, f"{method.upper()} {template} answered undeclared {reply.status}"
        content_type = reply.headers["content-type"].split(";")[0]
        content = responses[str(reply.status)].get("content", {})
        assert content_type in content, f"{method.upper()} {template} {reply.status}: undeclared {content_type}"
        if content_type == "application/json":
            schema = json_schema(content[content_type]["schema"], self.components)
            jsonschema.validate(reply.json(), schema, format_checker=jsonschema.FormatChecker())
        self.checked.add((method, template, reply.status))


@pytest.fixture
async def contract(api: ApiClient) -> Contract:
    reply = await api.get(f"{BASE}/schema/", headers={"accept": "application/vnd.oai.openapi+json"})
    assert reply.status == 200
    return Contract(reply.json())


async def test_every_visitor_operation_is_in_the_schema_with_its_errors(contract: Contract) -> None:
    paths = contract.schema["paths"]
    for (method, path), operation_id in OPERATIONS.items():
        operation = paths[path][method]
        assert operation["operationId"] == operation_id
        declared = set(operation["responses"])
        assert {"401", "403", "405", "406", "413", "415", "429", "503"} <= declared, (path, method)
        if path != "/api/v1/conversations/":
            assert "404" in declared and operation["security"] == [{"conversationToken": []}]
    scheme = contract.schema["components"]["securitySchemes"]["conversationToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    create = paths["/api/v1/conversations/{conversation_id}/messages/"]["post"]
    assert set(create["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"409", "500", "502", "504"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    text = contract.components["VisitorMessageCreateRequest"]["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, 1000)


async def test_every_answer_of_a_scenario_conforms_to_the_schema(api: ApiClient, contract: Contract) -> None:
    check = contract.check
    create = f"{BASE}/conversations/"
    reply = await api.post(create, {"page": {"url": "https://x.example/"}, "locale": "fr"})
    check("post", create, reply)
    check("post", create, await api.post(create, {"locale": 7}))
    conversation = await start_conversation(api)
    client, path, messages = conversation.client, conversation.path, conversation.messages
    check("get", path, await client.get(path))
    check("get", path, await api.get(path))
    check("get", path, await client.get(f"{BASE}/conversations/{uuid.uuid4()}/"))
    check("get", path, await client.get(path, headers={"accept": "text/html"}))
    check("post", messages, await client.post(messages, {"text": ""}))
    turn = await client.post(messages, {"text": "How do I scale Parley?", "client_id": "k1"})
    check("post", messages, turn)
    check("post", messages, await client.post(messages, {"text": "How do I scale Parley?", "client_id": "k1"}))
    check("post", messages, await client.request("POST", messages, body=b"{", headers={"accept": "application/json"}))
    check("get", messages, await client.get(messages))
    check("get", messages, await client.get(messages, query={"since": "x"}))
    ai_id = turn.json()["ai_message"]["message_id"]
    feedback = f"{BASE}/messages/{ai_id}/feedback/"
    check("post", feedback, await client.post(feedback, {"rating": "up"}))
    check("post", feedback, await client.post(feedback, {"rating": "down", "comment": "meh"}))
    check("post", feedback, await client.post(feedback, {"rating": "sideways"}))
    check("post", f"{path}rating/", await client.post(f"{path}rating/", {"score": 3}))
    check("post", f"{path}rating/", await client.post(f"{path}rating/", {"score": 3, "resolved": None}))
    check("post", f"{path}handoff/", await client.post(f"{path}handoff/", {}))
    check("post", f"{path}end/", await client.post(f"{path}end/"))
    check("post", f"{path}end/", await client.request("PUT", f"{path}end/"))
    statuses = {status for _, _, status in contract.checked}
    assert statuses >= {200, 201, 400, 401, 403, 405, 406}


async def test_a_failed_turn_and_a_rate_limit_conform_too(api: ApiClient, contract: Contract, settings) -> None:
    from tests.assistant.providers.test_failover import point
    from tests.support.fake_vendors import refused_url

    conversation = await start_conversation(api)
    settings.AI_PROVIDERS = ["openai"]
    point(settings, "openai", refused_url())
    settings.PROVIDER_MAX_RETRIES = 0
    settings.TITLE_FROM_PROVIDER = False
    failed = await conversation.client.post(conversation.messages, {"text": "Hi"})
    assert failed.status == 502
    contract.check("post", conversation.messages, failed)
    settings.API_REQUESTS_PER_IP_PER_MINUTE = 1
    limited = ApiClient(ip=f"10.7.{uuid.uuid4().int % 250}.3", token=conversation.token)
    await limited.get(conversation.path)
    refused = await limited.get(conversation.path)
    assert refused.status == 429
    contract.check("get", conversation.path, refused)
