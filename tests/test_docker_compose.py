"""Static checks of the container deployment (docker-compose.yml + deploy/nginx.conf).

These tests only read files; they need neither Docker nor the Django app.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
ENV_EXAMPLE = ROOT / ".env.example"

EXPECTED_SERVICES = {"postgres", "redis", "migrate", "web", "proxy"}
ONE_OFF_RESTART_POLICIES = {"no", False}
COMPLETED = "service_completed_successfully"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def web_env(services: dict) -> dict[str, str]:
    return environment_of(services["web"])


@pytest.fixture(scope="module")
def nginx() -> list:
    return parse_nginx(NGINX_CONF.read_text(encoding="utf-8"))


def environment_of(service: dict) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    result = {}
    for item in env:
        name, _, value = str(item).partition("=")
        result[name] = value
    return result


def depends_on_of(service: dict) -> dict[str, dict]:
    """depends_on normalised to {service: {"condition": ...}} (short form = service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: (spec or {"condition": "service_started"}) for name, spec in deps.items()}


def volume_sources_and_targets(service: dict) -> list[tuple[str, str]]:
    pairs = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            pairs.append((str(volume.get("source", "")), str(volume.get("target", ""))))
        else:
            source, _, rest = str(volume).partition(":")
            pairs.append((source, rest.split(":")[0]))
    return pairs


def one_off_services(services: dict) -> set[str]:
    """Services that others wait on to *finish* (e.g. migrate); all others run continuously."""
    return {
        dependency
        for service in services.values()
        for dependency, spec in depends_on_of(service).items()
        if spec.get("condition") == COMPLETED
    }


# Minimal nginx.conf parser: a block is a list of (name, args, children-or-None).
_NGINX_TOKEN = re.compile(r"""\s*(?:("(?:\\.|[^"])*"|'(?:\\.|[^'])*')|([{};])|([^\s{};"']+))""")


def parse_nginx(text: str) -> list:
    text = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
    tokens = []
    position = 0
    while position < len(text):
        match = _NGINX_TOKEN.match(text, position)
        if not match or match.end() == position:
            assert not text[position:].strip(), f"cannot parse nginx.conf near {text[position:][:40]!r}"
            break
        position = match.end()
        quoted, punct, word = match.groups()
        if quoted is not None:
            tokens.append(("word", quoted[1:-1]))
        elif punct is not None:
            tokens.append((punct, punct))
        elif word is not None:
            tokens.append(("word", word))

    def parse_block(index: int) -> tuple[list, int]:
        block: list = []
        words: list[str] = []
        while index < len(tokens):
            kind, value = tokens[index]
            index += 1
            if kind == "word":
                words.append(value)
            elif kind == ";":
                assert words, "empty nginx directive"
                block.append((words[0], words[1:], None))
                words = []
            elif kind == "{":
                assert words, "nginx block without a name"
                children, index = parse_block(index)
                block.append((words[0], words[1:], children))
                words = []
            else:  # "}"
                assert not words, f"unterminated nginx directive {words}"
                return block, index
        assert not words, f"unterminated nginx directive {words}"
        return block, index

    tree, end = parse_block(0)
    assert end == len(tokens), "unbalanced braces in nginx.conf"
    return tree


def walk(block: list):
    for name, args, children in block:
        yield name, args, children
        if children:
            yield from walk(children)


def directives(block: list, name: str) -> list[list[str]]:
    """Arguments of each `name` directive directly inside `block`."""
    return [args for directive, args, _ in block if directive == name]


def ws_location(tree: list) -> list:
    for name, args, children in walk(tree):
        if name == "location" and children is not None and args and args[-1].startswith("/ws"):
            return children
    pytest.fail("deploy/nginx.conf has no `location /ws/` block")


def upstream_targets(tree: list, proxy_pass_url: str) -> set[str]:
    """host:port values a proxy_pass URL resolves to (via upstream blocks or `set` variables)."""
    target = re.sub(r"^[a-z]+://", "", proxy_pass_url).split("/")[0]
    variables = {args[0]: args[1] for name, args, _ in walk(tree) if name == "set" and len(args) == 2}
    if target in variables:
        target = re.sub(r"^[a-z]+://", "", variables[target]).split("/")[0]
    upstreams = {
        args[0]: {server[0] for server in directives(children, "server")}
        for name, args, children in walk(tree)
        if name == "upstream" and children is not None
    }
    return upstreams.get(target, {target})


def header_values(block: list) -> dict[str, str]:
    return {args[0].lower(): " ".join(args[1:]) for args in directives(block, "proxy_set_header")}


# --------------------------------------------------------------------------- compose


def test_compose_defines_database_cache_migration_web_and_proxy_services(services):
    assert set(services) >= EXPECTED_SERVICES, f"missing services: {EXPECTED_SERVICES - set(services)}"


def test_compose_file_uses_the_compose_spec_without_a_version_key(compose):
    assert "version" not in compose


def test_web_runs_at_least_two_replicas_behind_the_proxy(services):
    replicas = (services["web"].get("deploy") or {}).get("replicas", 1)
    assert int(replicas) >= 2
    assert "web" in depends_on_of(services["proxy"])
    assert not services["web"].get("ports"), "web replicas must not publish host ports; the proxy does"


def test_web_gets_longer_to_stop_than_its_shutdown_grace_and_phases(services, web_env):
    """SIGTERM starts a drain of up to SHUTDOWN_GRACE_S + 15 s (project/shutdown.py); a SIGKILL
    before it ends (Docker's default is after 10 s) cuts the replies it was letting finish."""
    period = str(services["web"].get("stop_grace_period", "10s"))
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", period)
    assert match and period, f"unexpected stop_grace_period {period!r}"
    seconds = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    assert seconds >= float(web_env.get("SHUTDOWN_GRACE_S", "20")) + 15


def test_web_serves_daphne_through_manage_serve(services):
    command = services["web"]["command"]
    command = command if isinstance(command, str) else " ".join(command)
    # `manage.py serve` runs daphne with the frame-size limit from settings.
    assert command.split()[:3] == ["python", "manage.py", "serve"]
    assert "--port 8000" in command and "--host 0.0.0.0" in command


def test_web_trusts_forwarded_headers_only_from_private_compose_addresses(services, web_env):
    command = services["web"]["command"]
    command = command if isinstance(command, str) else " ".join(command)
    assert web_env.get("TRUST_PROXY_HEADERS") in {"1", "true"} or "--proxy-headers" in command.split()
    # The default of ${TRUSTED_PROXIES:-...}: networks the compose network is allocated from.
    value = re.sub(r"^\$\{TRUSTED_PROXIES:-(.*)\}$", r"\1", web_env["TRUSTED_PROXIES"])
    networks = [ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()]
    assert networks
    for network in networks:
        assert network.is_private and network.prefixlen >= 8, f"{network} is not a private proxy network"
    assert web_env.get("TRUSTED_PROXY_HOPS", "0") == "0"


def test_web_database_url_points_at_the_postgres_service(services, web_env):
    url = urlparse(web_env["DATABASE_URL"])
    assert url.scheme in {"postgres", "postgresql"}
    assert url.hostname == "postgres"
    assert url.hostname in services
    postgres_env = environment_of(services["postgres"])
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_web_redis_url_points_at_the_redis_service(services, web_env):
    url = urlparse(web_env["REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis"
    assert url.hostname in services


def test_web_runs_in_production_mode_and_requires_a_secret_key(web_env):
    assert web_env["PARLEY_ENV"] == "production"
    assert ":?" in web_env["SECRET_KEY"], "SECRET_KEY must be required from the environment"


def test_migrate_and_web_share_the_same_build_and_environment(services):
    migrate, web = services["migrate"], services["web"]
    assert migrate["build"] == web["build"]
    assert environment_of(migrate) == environment_of(web)


def test_web_waits_for_healthy_backends_and_a_successful_migration(services):
    deps = depends_on_of(services["web"])
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["migrate"]["condition"] == COMPLETED


def test_migrate_runs_once_after_postgres_is_healthy(services):
    migrate = services["migrate"]
    command = migrate["command"]
    command = command if isinstance(command, str) else " ".join(command)
    assert "manage.py migrate" in command
    assert migrate.get("restart") in ONE_OFF_RESTART_POLICIES
    assert depends_on_of(migrate)["postgres"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(services):
    long_running = set(services) - one_off_services(services)
    assert {"postgres", "redis", "web", "proxy"} <= long_running
    for name in sorted(long_running):
        healthcheck = services[name].get("healthcheck") or {}
        assert healthcheck.get("test"), f"service {name!r} has no healthcheck"
        assert not healthcheck.get("disable"), f"service {name!r} disables its healthcheck"


def test_web_healthcheck_probes_healthz(services):
    test = services["web"]["healthcheck"]["test"]
    test = test if isinstance(test, str) else " ".join(test)
    assert "/healthz" in test


def test_postgres_data_lives_in_a_named_volume(compose, services):
    named_volumes = set(compose.get("volumes") or {})
    sources = [source for source, _ in volume_sources_and_targets(services["postgres"])]
    assert any(source in named_volumes for source in sources), "postgres needs a named data volume"


def test_proxy_publishes_a_port_and_mounts_the_nginx_config(services):
    proxy = services["proxy"]
    assert proxy.get("ports"), "the proxy must publish a port"
    mounts = volume_sources_and_targets(proxy)
    assert any(Path(source).as_posix().removeprefix("./") == "deploy/nginx.conf" for source, _ in mounts), (
        f"deploy/nginx.conf is not mounted: {mounts}"
    )
    assert depends_on_of(proxy)["web"]["condition"] == "service_healthy"


# --------------------------------------------------------------------------- nginx


def test_nginx_conf_is_a_complete_config_with_events_and_http_blocks(nginx):
    top_level = {name for name, _, _ in nginx}
    assert {"events", "http"} <= top_level


def test_nginx_proxies_every_location_to_the_web_service(nginx):
    proxy_passes = [args[0] for name, args, _ in walk(nginx) if name == "proxy_pass"]
    assert proxy_passes, "nginx.conf has no proxy_pass"
    for url in proxy_passes:
        assert upstream_targets(nginx, url) == {"web:8000"}, url


def test_nginx_resolves_web_through_docker_dns_so_all_replicas_are_used(nginx):
    resolvers = [args for name, args, _ in walk(nginx) if name == "resolver"]
    assert any("127.0.0.11" in args for args in resolvers)


def test_nginx_upgrades_websockets_on_the_ws_location(nginx):
    location = ws_location(nginx)
    assert ["1.1"] in directives(location, "proxy_http_version")
    headers = header_values(location)
    assert headers.get("upgrade") == "$http_upgrade"
    connection = headers.get("connection", "")
    assert connection.startswith("$")
    maps = [args for name, args, _ in walk(nginx) if name == "map"]
    assert ["$http_upgrade", connection] in maps, "Connection header must come from a map of $http_upgrade"


def test_nginx_keeps_websockets_open_and_streams_without_buffering(nginx):
    location = ws_location(nginx)
    assert ["off"] in directives(location, "proxy_buffering")
    (timeout,) = directives(location, "proxy_read_timeout")
    value = timeout[0]
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)([smhd]?)", value)
    assert match, value
    assert int(match.group(1)) * seconds[match.group(2) or "s"] >= 3600


def test_nginx_forwards_host_client_address_and_scheme(nginx):
    locations = [children for name, _, children in walk(nginx) if name == "location" and children]
    proxied = [block for block in locations if directives(block, "proxy_pass")]
    assert proxied
    for block in proxied:
        headers = header_values(block)
        assert {"host", "x-forwarded-for", "x-forwarded-proto"} <= set(headers), headers


def test_nginx_sets_x_forwarded_for_from_remote_addr_never_appending_the_clients_header(nginx):
    """Issue 13 item 3: $proxy_add_x_forwarded_for kept the client's spoofed entries."""
    locations = [children for name, _, children in walk(nginx) if name == "location" and children]
    proxied = [block for block in locations if directives(block, "proxy_pass")]
    assert proxied
    for block in proxied:
        assert header_values(block)["x-forwarded-for"] == "$remote_addr"
    every_value = [" ".join(args) for name, args, _ in walk(nginx) if name == "proxy_set_header"]
    assert not any("$proxy_add_x_forwarded_for" in value for value in every_value)


def test_nginx_limits_request_bodies_to_one_megabyte(nginx):
    sizes = [args for name, args, _ in walk(nginx) if name == "client_max_body_size"]
    assert ["1m"] in sizes


# --------------------------------------------------------------------------- .env.example


def test_every_web_environment_variable_is_documented_in_env_example(web_env):
    if not ENV_EXAMPLE.exists():
        pytest.skip(".env.example does not exist yet")
    documented = set(
        re.findall(
            r"^\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)\s*=",
            ENV_EXAMPLE.read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    )
    missing = sorted(set(web_env) - documented)
    assert not missing, f"variables used by web but missing from .env.example: {missing}"
