"""Settings from the environment: the contract's names, precedence, and derived defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import config
from core.config import Settings


def test_defaults_without_environment():
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("0.0.0.0", 3001)
    assert settings.database_url is None  # the embedded PostgreSQL
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.media_path == settings.data_dir / "media"
    assert (settings.db_pool_max, settings.db_idle_timeout, settings.db_connect_timeout) == (20, 30.0, 2.0)
    assert settings.bench is False


def test_database_url_wins_over_the_journal_names():
    env = {"DATABASE_URL": "postgresql://a@b/c", "POSTGRES_HOST": "ignored"}
    assert Settings.from_env(env).database_url == "postgresql://a@b/c"


def test_journal_postgres_names_build_a_url_with_their_defaults():
    url = Settings.from_env({"POSTGRES_HOST": "db.internal", "POSTGRES_PASSWORD": "p@ss/word"}).database_url
    assert url == "postgresql://postgres:p%40ss%2Fword@db.internal:5432/video-editor"


def test_redis_names():
    assert Settings.from_env({"REDIS_URL": "redis://r:1/2"}).redis_url == "redis://r:1/2"
    built = Settings.from_env({"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_PASSWORD": "s"}).redis_url
    assert built == "redis://:s@cache:6380/0"


def test_flags_override_the_environment(tmp_path: Path):
    settings = Settings.from_env({"PORT": "4000", "NVE_DATA_DIR": "/nowhere"}, port=5000, data_dir=tmp_path,
                                 host=None)
    assert settings.port == 5000 and settings.data_dir == tmp_path and settings.host == "0.0.0.0"


def test_lists_and_numbers():
    settings = Settings.from_env({"NVE_ALLOWED_ORIGINS": "https://a.example, https://b.example,",
                                  "NVE_RATE_LIMIT_WRITES": "7", "NVE_SESSION_TTL": "90", "NVE_BENCH": "1",
                                  "MEDIA_DIR": "/srv/media", "NVE_JOB_LEASE": "5"})
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.rate_limit_writes == 7 and settings.session_ttl == 90.0 and settings.bench
    assert settings.media_path == Path("/srv/media") and settings.jobs.lease_seconds == 5.0


def test_workers_share_the_spare_cores_for_codec_threads(monkeypatch):
    monkeypatch.setattr(config, "SPARE_CORES", 7)
    assert Settings.from_env({"NVE_WORKERS": "7"}).jobs.codec_threads == 1
    assert Settings.from_env({"NVE_WORKERS": "2"}).jobs.codec_threads == 3
    assert Settings.from_env({"NVE_WORKERS": "2", "NVE_CODEC_THREADS": "6"}).jobs.codec_threads == 6


def test_allowed_origins_are_normalised_once_whichever_way_they_are_given():
    env = {"NVE_ALLOWED_ORIGINS": "HTTPS://Example.COM:443/, http://LOCALHOST:8080/, https://example.com, *"}
    assert Settings.from_env(env).allowed_origins == ("https://example.com", "http://localhost:8080", "*")
    direct = Settings(allowed_origins=("WSS://[::1]:443", "http://a.example:80", "https://a.example:8443"))
    assert direct.allowed_origins == ("wss://[::1]", "http://a.example", "https://a.example:8443")


@pytest.mark.parametrize("origin", ["example.com", "https://example.com/app", "https://u@example.com",
                                    "https://example.com:99999", "null"])
def test_an_allowed_origin_that_is_no_origin_is_kept_as_a_literal_with_a_warning(origin: str, caplog):
    assert Settings.from_env({"NVE_ALLOWED_ORIGINS": origin}).allowed_origins == (origin.lower(),)
    assert "is not an origin" in caplog.text


def test_null_allowed_lets_a_sandboxed_page_in():
    from server.ws.handshake import origin_allowed

    allowed = Settings.from_env({"NVE_ALLOWED_ORIGINS": "null"}).allowed_origins
    assert origin_allowed("null", "localhost:3001", allowed)
    assert not origin_allowed("null", "localhost:3001", ())


def test_redis_prefix():
    assert Settings.from_env({}).redis_prefix == ""
    assert Settings.from_env({"NVE_REDIS_PREFIX": "staging:"}).redis_prefix == "staging:"
