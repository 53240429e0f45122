"""`project.env`: typed readers, the `.env` loader, and the settings they produce."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project import env

BASE_DIR = Path(__file__).resolve().parents[2]
VAR = "PARLEY_TEST_VALUE"
SetVar = Callable[[str], None]


@pytest.fixture
def setvar(monkeypatch: pytest.MonkeyPatch) -> SetVar:
    """Set the test variable to a text for one test."""

    def _set(value: str) -> None:
        monkeypatch.setenv(VAR, value)

    monkeypatch.delenv(VAR, raising=False)
    return _set


def refused(match: str = VAR) -> AbstractContextManager[pytest.ExceptionInfo[ImproperlyConfigured]]:
    """The reader must refuse the value with a message naming the variable."""
    return pytest.raises(ImproperlyConfigured, match=match)


# --- raw / string -----------------------------------------------------------------------------
def test_string_returns_default_when_unset(setvar: SetVar) -> None:
    assert env.string(VAR, "fallback") == "fallback"


def test_string_returns_default_when_blank(setvar: SetVar) -> None:
    setvar("   ")
    assert env.string(VAR, "fallback") == "fallback"


def test_string_strips_surrounding_whitespace(setvar: SetVar) -> None:
    setvar("  hello world  ")
    assert env.string(VAR, "fallback") == "hello world"


def test_optional_string_is_none_when_unset_and_text_when_set(setvar: SetVar) -> None:
    assert env.optional_string(VAR) is None
    setvar("s3cret")
    assert env.optional_string(VAR) == "s3cret"


# --- boolean ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "On"])
def test_boolean_reads_true_words(setvar: SetVar, text: str) -> None:
    setvar(text)
    assert env.boolean(VAR, False) is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "OFF"])
def test_boolean_reads_false_words(setvar: SetVar, text: str) -> None:
    setvar(text)
    assert env.boolean(VAR, True) is False


def test_boolean_returns_default_when_unset_or_blank(setvar: SetVar) -> None:
    assert env.boolean(VAR, True) is True
    setvar("")
    assert env.boolean(VAR, True) is True


@pytest.mark.parametrize("text", ["maybe", "2", "y"])
def test_boolean_refuses_other_words_naming_the_variable(setvar: SetVar, text: str) -> None:
    setvar(text)
    with refused():
        env.boolean(VAR, False)


# --- integer ----------------------------------------------------------------------------------
def test_integer_parses_whole_number(setvar: SetVar) -> None:
    setvar(" 42 ")
    assert env.integer(VAR, 7) == 42


def test_integer_returns_default_when_unset(setvar: SetVar) -> None:
    assert env.integer(VAR, 7) == 7


def test_integer_accepts_values_on_the_bounds(setvar: SetVar) -> None:
    setvar("1")
    assert env.integer(VAR, 7, minimum=1, maximum=65535) == 1
    setvar("65535")
    assert env.integer(VAR, 7, minimum=1, maximum=65535) == 65535


@pytest.mark.parametrize("text", ["1.5", "abc", "12abc"])
def test_integer_refuses_non_whole_numbers_naming_the_variable(setvar: SetVar, text: str) -> None:
    setvar(text)
    with refused(f"{VAR} must be a whole number"):
        env.integer(VAR, 7)


def test_integer_refuses_value_below_minimum(setvar: SetVar) -> None:
    setvar("0")
    with refused(f"{VAR} must be at least 1, got 0"):
        env.integer(VAR, 7, minimum=1)


def test_integer_refuses_value_above_maximum(setvar: SetVar) -> None:
    setvar("65536")
    with refused(f"{VAR} must be at most 65535, got 65536"):
        env.integer(VAR, 7, maximum=65535)


# --- decimal ----------------------------------------------------------------------------------
def test_decimal_parses_number(setvar: SetVar) -> None:
    setvar("2.5")
    assert env.decimal(VAR, 1.0) == 2.5


def test_decimal_reads_whole_number_as_float(setvar: SetVar) -> None:
    setvar("3")
    assert env.decimal(VAR, 1.0) == 3.0


def test_decimal_returns_default_when_unset(setvar: SetVar) -> None:
    assert env.decimal(VAR, 1.5) == 1.5


def test_decimal_refuses_text_naming_the_variable(setvar: SetVar) -> None:
    setvar("fast")
    with refused(f"{VAR} must be a number"):
        env.decimal(VAR, 1.0)


def test_decimal_refuses_value_below_minimum(setvar: SetVar) -> None:
    setvar("0.05")
    with refused(f"{VAR} must be at least 0.1"):
        env.decimal(VAR, 1.0, minimum=0.1)


def test_decimal_refuses_value_above_maximum(setvar: SetVar) -> None:
    setvar("10.5")
    with refused(f"{VAR} must be at most 10"):
        env.decimal(VAR, 1.0, maximum=10)


def test_decimal_refuses_nan_when_bounded(setvar: SetVar) -> None:
    setvar("nan")
    with refused():
        env.decimal(VAR, 1.0, minimum=0, maximum=10)


# --- string_list ------------------------------------------------------------------------------
def test_string_list_splits_on_commas_and_strips_items(setvar: SetVar) -> None:
    setvar("https://a.example, https://b.example ,https://c.example")
    assert env.string_list(VAR, []) == ["https://a.example", "https://b.example", "https://c.example"]


def test_string_list_drops_blank_items(setvar: SetVar) -> None:
    setvar(",a,, ,b,")
    assert env.string_list(VAR, []) == ["a", "b"]


def test_string_list_uses_given_separator_keeping_commas(setvar: SetVar) -> None:
    setvar("Hi, there?| How do I scale? |")
    assert env.string_list(VAR, [], separator="|") == ["Hi, there?", "How do I scale?"]


def test_string_list_returns_copy_of_default_when_unset(setvar: SetVar) -> None:
    default = ["localhost"]
    result = env.string_list(VAR, default)
    assert result == ["localhost"]
    result.append("other")
    assert default == ["localhost"]


# --- choice -----------------------------------------------------------------------------------
def test_choice_returns_lower_cased_choice(setvar: SetVar) -> None:
    setvar("PRODUCTION")
    assert env.choice(VAR, "development", ("development", "production")) == "production"


def test_choice_returns_default_when_unset(setvar: SetVar) -> None:
    assert env.choice(VAR, "development", ("development", "production")) == "development"


def test_choice_refuses_unknown_word_listing_choices(setvar: SetVar) -> None:
    setvar("staging")
    with refused(f"{VAR} must be one of development, production, got 'staging'"):
        env.choice(VAR, "development", ("development", "production"))


# --- path -------------------------------------------------------------------------------------
def test_path_takes_relative_path_from_project_root(setvar: SetVar) -> None:
    setvar("data/knowledge")
    assert env.path(VAR, Path("/unused")) == BASE_DIR / "data" / "knowledge"


def test_path_keeps_absolute_path(setvar: SetVar, tmp_path: Path) -> None:
    setvar(str(tmp_path / "kb"))
    assert env.path(VAR, Path("/unused")) == tmp_path / "kb"


def test_path_expands_home(setvar: SetVar, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    setvar("~/parley.sqlite3")
    assert env.path(VAR, Path("/unused")) == tmp_path / "parley.sqlite3"


def test_path_returns_default_when_unset(setvar: SetVar) -> None:
    assert env.path(VAR, Path("/srv/default")) == Path("/srv/default")


# --- database_url -----------------------------------------------------------------------------
def test_database_url_is_none_when_unset(setvar: SetVar) -> None:
    assert env.database_url(VAR) is None


def test_database_url_splits_all_parts(setvar: SetVar) -> None:
    setvar("postgres://parley:hunter2@db.example.com:5433/parley_prod")
    assert env.database_url(VAR) == {
        "NAME": "parley_prod",
        "USER": "parley",
        "PASSWORD": "hunter2",
        "HOST": "db.example.com",
        "PORT": "5433",
    }


def test_database_url_unescapes_percent_encoded_password_and_user(setvar: SetVar) -> None:
    setvar("postgresql://app%2Buser:p%40ss%3Aw%2Frd%25@127.0.0.1/parley")
    assert env.database_url(VAR) == {
        "NAME": "parley",
        "USER": "app+user",
        "PASSWORD": "p@ss:w/rd%",
        "HOST": "127.0.0.1",
        "PORT": "",
    }


def test_database_url_without_password_or_port_leaves_them_blank(setvar: SetVar) -> None:
    setvar("pgsql://u@h/db")
    assert env.database_url(VAR) == {"NAME": "db", "USER": "u", "PASSWORD": "", "HOST": "h", "PORT": ""}


@pytest.mark.parametrize("url", ["postgres://u@h:5432/", "postgres://u@h:5432"])
def test_database_url_refuses_missing_database_name(setvar: SetVar, url: str) -> None:
    setvar(url)
    with refused(f"{VAR} must name a database"):
        env.database_url(VAR)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///db.sqlite3", "h/db"])
def test_database_url_refuses_other_schemes(setvar: SetVar, url: str) -> None:
    setvar(url)
    with refused(f"{VAR} must be a postgres:// URL"):
        env.database_url(VAR)


@pytest.mark.parametrize("url", ["postgres://u@h:abc/db", "postgres://u@h:99999/db"])
def test_database_url_refuses_bad_port(setvar: SetVar, url: str) -> None:
    setvar(url)
    with refused(f"{VAR} has an invalid port"):
        env.database_url(VAR)


# --- redis_url --------------------------------------------------------------------------------
def test_redis_url_is_none_when_unset(setvar: SetVar) -> None:
    assert env.redis_url(VAR) is None


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.example:6380/1", "unix:///run/redis.sock"]
)
def test_redis_url_returns_supported_urls_unchanged(setvar: SetVar, url: str) -> None:
    setvar(url)
    assert env.redis_url(VAR) == url


@pytest.mark.parametrize("url", ["http://cache.example:6379", "127.0.0.1:6379"])
def test_redis_url_refuses_other_schemes(setvar: SetVar, url: str) -> None:
    setvar(url)
    with refused(f"{VAR} must be a redis:// URL"):
        env.redis_url(VAR)


def test_ip_networks_accepts_addresses_and_cidr_networks_and_keeps_the_default_when_unset(setvar: SetVar) -> None:
    setvar("10.0.0.0/8, ::1,192.168.1.7 ,2001:db8::/32")
    assert env.ip_networks(VAR, ["127.0.0.0/8"]) == ["10.0.0.0/8", "::1", "192.168.1.7", "2001:db8::/32"]
    setvar("  ")
    assert env.ip_networks(VAR, ["127.0.0.0/8"]) == ["127.0.0.0/8"]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.example", "10.0.0.0/8,nope"])
def test_ip_networks_refuses_what_is_not_an_address_or_network(setvar: SetVar, value: str) -> None:
    setvar(value)
    with refused(f"{VAR} must list IP addresses or CIDR networks"):
        env.ip_networks(VAR, [])


# --- _load_dotenv -----------------------------------------------------------------------------
DOTENV_KEYS = (
    "PARLEY_T_PLAIN",
    "PARLEY_T_DOUBLE",
    "PARLEY_T_SINGLE",
    "PARLEY_T_EXPORTED",
    "PARLEY_T_EMPTY",
    "PARLEY_T_REAL",
    "PARLEY_T_MISMATCHED",
    "PARLEY_T_EQUALS",
    "PARLEY_T_BEFORE",
)


@pytest.fixture
def dotenv_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every variable the loader may set disappear again after the test."""
    for key in DOTENV_KEYS:
        # setenv first so monkeypatch records "was unset" and deletes what the loader adds.
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


@pytest.mark.usefixtures("dotenv_keys")
def test_load_dotenv_reads_values_skipping_comments_and_unquoting(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment\n"
        "\n"
        "PARLEY_T_PLAIN=plain value\n"
        '  PARLEY_T_DOUBLE = "double quoted"  \n'
        "PARLEY_T_SINGLE='single # not a comment'\n"
        "export PARLEY_T_EXPORTED=yes\n"
        "PARLEY_T_EMPTY=\n"
        "PARLEY_T_MISMATCHED=\"half'\n"
        "PARLEY_T_EQUALS=a=b=c\n"
        "    # indented comment\n",
        encoding="utf-8",
    )
    env._load_dotenv(dotenv)
    assert os.environ["PARLEY_T_PLAIN"] == "plain value"
    assert os.environ["PARLEY_T_DOUBLE"] == "double quoted"
    assert os.environ["PARLEY_T_SINGLE"] == "single # not a comment"
    assert os.environ["PARLEY_T_EXPORTED"] == "yes"
    assert os.environ["PARLEY_T_EMPTY"] == ""
    assert os.environ["PARLEY_T_MISMATCHED"] == "\"half'"
    assert os.environ["PARLEY_T_EQUALS"] == "a=b=c"


@pytest.mark.usefixtures("dotenv_keys")
def test_load_dotenv_never_overrides_real_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_T_REAL", "from the environment")
    dotenv = tmp_path / ".env"
    dotenv.write_text("PARLEY_T_REAL=from the file\n", encoding="utf-8")
    env._load_dotenv(dotenv)
    assert os.environ["PARLEY_T_REAL"] == "from the environment"


def test_load_dotenv_ignores_missing_file(tmp_path: Path) -> None:
    env._load_dotenv(tmp_path / "absent.env")  # no error


@pytest.mark.usefixtures("dotenv_keys")
@pytest.mark.parametrize("bad_line", ["NOT A SETTING", "1BAD=value", "=value", "BAD-KEY=value"])
def test_load_dotenv_refuses_malformed_line_naming_file_and_line(tmp_path: Path, bad_line: str) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# header\nPARLEY_T_BEFORE=1\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(ImproperlyConfigured, match=f"^{re.escape(str(dotenv))}:3: expected KEY=VALUE"):
        env._load_dotenv(dotenv)


# --- settings in a fresh process ----------------------------------------------------------------
SETTINGS_SCRIPT = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "HOST": db.get("HOST"),
    "CONN_MAX_AGE": db.get("CONN_MAX_AGE"),
    "OPTIONS": db["OPTIONS"],
    "CHANNEL_BACKEND": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "CHANNEL_HOSTS": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts"),
    "CACHE_BACKEND": settings.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": settings.CACHES["default"]["LOCATION"],
    "AI_PROVIDERS": settings.AI_PROVIDERS,
    "SYSTEM_PROMPT": settings.ASSISTANT_SYSTEM_PROMPT,
}))
"""
# Everything settings.py reads that could leak in from the developer's or CI's environment.
_SCRUBBED = (
    "PARLEY_ENV",
    "SECRET_KEY",
    "DEBUG",
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "DJANGO_SETTINGS_MODULE",
    "WIDGET_IDENTITY_REQUIRED",
    "ALLOWED_HOSTS",
    "AI_PROVIDERS",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "ASSISTANT_SYSTEM_PROMPT",
    "ASSISTANT_SYSTEM_PROMPT_FILE",
)


def run_settings(**variables: str) -> subprocess.CompletedProcess[str]:
    """Import project.settings in a new interpreter with only `variables` configured."""
    environment = {key: value for key, value in os.environ.items() if key not in _SCRUBBED}
    environment.update(PARLEY_DOTENV="0", **variables)
    return subprocess.run(
        [sys.executable, "-c", SETTINGS_SCRIPT],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_refuse_production_without_secret_key() -> None:
    result = run_settings(PARLEY_ENV="production")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when PARLEY_ENV is production" in result.stderr


def test_settings_refuse_production_with_debug_on() -> None:
    result = run_settings(PARLEY_ENV="production", SECRET_KEY="a-real-secret", DEBUG="1")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG must be off when PARLEY_ENV is production" in result.stderr


def test_settings_in_production_with_postgres_and_redis_use_pool_and_redis_backends() -> None:
    result = run_settings(
        PARLEY_ENV="production",
        SECRET_KEY="a-real-secret",
        DATABASE_URL="postgres://u@h/db",
        REDIS_URL="redis://cache.internal:6379/2",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["DEBUG"] is False
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert values["NAME"] == "db"
    assert values["HOST"] == "h"
    assert values["CONN_MAX_AGE"] == 0
    assert values["OPTIONS"] == {"options": "-c jit=off", "pool": {"min_size": 2, "max_size": 10, "timeout": 10.0}}
    assert values["CHANNEL_BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert values["CHANNEL_HOSTS"] == [
        {
            "address": "redis://cache.internal:6379/2",
            "socket_timeout": 30,
            "socket_connect_timeout": 5,
            "max_connections": 1000,
        }
    ]
    assert values["CACHE_BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert values["CACHE_LOCATION"] == "redis://cache.internal:6379/2"


def test_settings_without_urls_use_sqlite_wal_and_in_memory_backends() -> None:
    result = run_settings()
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["DEBUG"] is True
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(BASE_DIR / "db.sqlite3")
    assert values["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL;" in values["OPTIONS"]["init_command"]
    assert "PRAGMA busy_timeout=30000;" in values["OPTIONS"]["init_command"]
    assert values["CHANNEL_BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert values["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_every_variable_read_in_settings_is_documented_in_env_example() -> None:
    """`.env.example` is the operator's list of knobs: a variable missing there is invisible."""
    root = Path(__file__).resolve().parents[2]
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', (root / "project" / "settings.py").read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (root / ".env.example").read_text(), re.MULTILINE))
    assert read, "no env reads found: the pattern is out of date"
    assert sorted(read - documented) == []


@pytest.mark.parametrize(
    ("keys", "chain"),
    [
        ({}, ["local"]),
        ({"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}, ["openai", "anthropic", "local"]),
        ({"GEMINI_API_KEY": "g", "ANTHROPIC_API_KEY": "a"}, ["gemini", "anthropic", "local"]),
    ],
)
def test_default_provider_chain_is_every_keyed_cloud_provider_then_local(
    keys: dict[str, str], chain: list[str]
) -> None:
    result = run_settings(**keys)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AI_PROVIDERS"] == chain


def test_explicit_provider_chain_is_kept_and_bad_names_are_refused() -> None:
    result = run_settings(AI_PROVIDERS="Anthropic, local")
    assert json.loads(result.stdout)["AI_PROVIDERS"] == ["anthropic", "local"]
    for bad in ("openai,mistral", "local,local"):
        refused = run_settings(AI_PROVIDERS=bad)
        assert refused.returncode != 0
        assert "ImproperlyConfigured: AI_PROVIDERS must list distinct names among" in refused.stderr


def test_system_prompt_file_wins_and_a_missing_one_is_a_clear_error(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Answer like a pirate.\n", encoding="utf-8")
    result = run_settings(ASSISTANT_SYSTEM_PROMPT="inline", ASSISTANT_SYSTEM_PROMPT_FILE=str(prompt))
    assert json.loads(result.stdout)["SYSTEM_PROMPT"] == "Answer like a pirate."
    missing = run_settings(ASSISTANT_SYSTEM_PROMPT_FILE=str(tmp_path / "nope.txt"))
    assert missing.returncode != 0 and "ASSISTANT_SYSTEM_PROMPT_FILE cannot be read" in missing.stderr


def test_text_patterns_are_one_per_line_or_backslash_n_separated(setvar: SetVar) -> None:
    assert env.text_patterns(VAR, ["*977#"]) == ["*977#"]  # unset: the default
    setvar("*977#\\nre:^Auto(matic)? reply\n  \nthanks for contacting")
    assert env.text_patterns(VAR, []) == ["*977#", "re:^Auto(matic)? reply", "thanks for contacting"]


def test_text_patterns_refuse_a_bad_regular_expression_naming_the_variable(setvar: SetVar) -> None:
    setvar("*977#\\nre:(unclosed")
    with refused("bad regular expression"):
        env.text_patterns(VAR, [])
