"""Settings: defaults, source precedence, validation errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from davserver.settings import Settings, SettingsError, find_config, load


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "davserver.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load(None, environ={})
    assert settings == Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.data_dir == Path("davdata")
    assert (settings.chunk_min_size, settings.chunk_avg_size, settings.chunk_max_size) == (
        64 * 1024,
        256 * 1024,
        1024 * 1024,
    )
    assert settings.local_fsync is True
    assert not settings.uses_s3
    assert settings.history_interval == 3600
    assert settings.upload_expiry == 86400


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'port = 1111\nhost = "0.0.0.0"\nverbose = 3\n')
    from_file = load(config, environ={})
    assert (from_file.port, from_file.host, from_file.verbose) == (1111, "0.0.0.0", 3)

    env = {"DAVSERVER_PORT": "2222", "DAVSERVER_VERBOSE": "0"}
    from_env = load(config, environ=env)
    assert (from_env.port, from_env.host, from_env.verbose) == (2222, "0.0.0.0", 0)

    flags = {"port": 3333, "host": None, "data_dir": "elsewhere"}
    final = load(config, environ=env, overrides=flags)
    assert (final.port, final.host, final.verbose) == (3333, "0.0.0.0", 0)
    assert final.data_dir == Path("elsewhere")


def test_env_bools() -> None:
    assert load(None, environ={"DAVSERVER_LOCAL_FSYNC": "no"}).local_fsync is False
    assert load(None, environ={"DAVSERVER_S3_SECURE": "On"}).s3_secure is True


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, "port = 1\nno_such_key = 5\n")
    with pytest.raises(SettingsError, match="no_such_key"):
        load(config, environ={})


def test_malformed_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="config file"):
        load(write_config(tmp_path, "port = = 1\n"), environ={})
    with pytest.raises(SettingsError, match="config file"):
        load(tmp_path / "missing.toml", environ={})


@pytest.mark.parametrize(
    ("key", "value"),
    [("PORT", "abc"), ("UPLOAD_WORKERS", "1.5"), ("LOCAL_FSYNC", "maybe"), ("S3_SECURE", "2")],
)
def test_bad_env_value_names_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"DAVSERVER_{key}"):
        load(None, environ={f"DAVSERVER_{key}": value})


def test_bad_file_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="local_fsync"):
        load(write_config(tmp_path, 'local_fsync = "sometimes"\n'), environ={})
    with pytest.raises(SettingsError, match="port"):
        load(write_config(tmp_path, 'port = "eighty"\n'), environ={})


def test_bad_override_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--port"):
        load(None, environ={}, overrides={"port": "x"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DAVSERVER_PORT": "70000"}, "port"),
        ({"DAVSERVER_CHUNK_MIN_SIZE": "8"}, "chunk_"),
        ({"DAVSERVER_CHUNK_AVG_SIZE": "100"}, "chunk_"),
        ({"DAVSERVER_UPLOAD_WORKERS": "0"}, "upload_workers"),
        ({"DAVSERVER_REQUEST_HEAD_TIMEOUT": "0"}, "request_head_timeout"),
        ({"DAVSERVER_KEEPALIVE_TIMEOUT": "0"}, "keepalive_timeout"),
        ({"DAVSERVER_MAX_CONNECTIONS": "0"}, "max_connections"),
        ({"DAVSERVER_WORKERS": "-1"}, "workers"),
        ({"DAVSERVER_WORKERS": "65"}, "workers"),
        ({"DAVSERVER_REDIS_URL": "localhost:6379"}, "redis_url"),
    ],
)
def test_cross_field_rules(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load(None, environ=env)


def test_workers_are_as_set_or_one_per_usable_core_up_to_four(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(workers=3).worker_count == 3
    for cores, expected in ((1, 1), (2, 2), (16, 4)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert Settings().worker_count == expected


def test_s3_endpoint_needs_keys() -> None:
    with pytest.raises(SettingsError, match="s3_access_key"):
        load(None, environ={"DAVSERVER_S3_ENDPOINT": "localhost:9000"})
    with pytest.raises(SettingsError, match="s3_secret_key"):
        load(None, environ={"DAVSERVER_S3_ENDPOINT": "s3:9000", "DAVSERVER_S3_ACCESS_KEY": "a"})
    env = {
        "DAVSERVER_S3_ENDPOINT": "localhost:9000",
        "DAVSERVER_S3_ACCESS_KEY": "a",
        "DAVSERVER_S3_SECRET_KEY": "b",
    }
    assert load(None, environ=env).uses_s3
    with pytest.raises(SettingsError, match="s3_endpoint"):
        load(None, environ={**env, "DAVSERVER_S3_ENDPOINT": "http://localhost:9000"})


def test_catalog_url_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = load(None, environ={"DAVSERVER_DATA_DIR": str(tmp_path / "data")})
    assert settings.catalog_url == f"sqlite:///{tmp_path / 'data' / 'catalog.db'}"
    url = "postgresql+psycopg://u:p@db/dav"
    assert load(None, environ={"DAVSERVER_DATABASE_URL": url}).catalog_url == url


def test_relative_data_dir_gives_absolute_sqlite_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load(None, environ={}).catalog_url == f"sqlite:///{tmp_path / 'davdata/catalog.db'}"


def test_replace_revalidates() -> None:
    assert Settings().replace(port=0).port == 0
    with pytest.raises(SettingsError, match="port"):
        Settings().replace(port=-1)


def test_unknown_environment_variable_is_named_with_the_closest_key() -> None:
    with pytest.raises(SettingsError, match=r"DAVSERVER_PORTT: .*DAVSERVER_PORT\?"):
        load(None, environ={"DAVSERVER_PORTT": "1"})
    with pytest.raises(SettingsError, match=r"^DAVSERVER_XYZZY: unknown setting$"):
        load(None, environ={"DAVSERVER_XYZZY": "1"})
    assert load(None, environ={"DAVSERVER_CONFIG": "x.toml", "OTHER_PORTT": "1"}) == Settings()
    # the test suite's own variables (README) may stay exported
    assert load(None, environ={"DAVSERVER_TEST_DB_URL": "postgresql://x"}) == Settings()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://dav:pw@db/dav", "unsupported scheme 'mysql'"),
        ("notaurl", "not a URL"),
        ("sqlite:/relative.db", "three slashes"),
        ("postgresql://dav:pw@db:port/dav", "port"),
    ],
)
def test_bad_database_url_is_one_line_without_the_password(url: str, says: str) -> None:
    with pytest.raises(SettingsError, match="database_url") as caught:
        load(None, environ={"DAVSERVER_DATABASE_URL": url})
    assert says in str(caught.value) and "pw" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["sqlite:////var/lib/dav/catalog.db", "postgresql+psycopg://dav@db:5432/dav"]
)
def test_good_database_urls(url: str) -> None:
    assert load(None, environ={"DAVSERVER_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DAVSERVER_PUBLIC_URL": "dav.example.com"}, "public_url"),
        ({"DAVSERVER_PUBLIC_URL": "ftp://dav.example.com"}, "public_url"),
        ({"DAVSERVER_PUBLIC_URL": "https://dav.example.com/?x=1"}, "public_url"),
        ({"DAVSERVER_LOG_FORMAT": "xml"}, "log_format"),
        ({"DAVSERVER_LOG_LEVEL": "loud"}, "log_level"),
        ({"DAVSERVER_STARTUP_WAIT": "-1"}, "startup_wait"),
        ({"DAVSERVER_READ_AHEAD": "-2"}, "read_ahead"),
        ({"DAVSERVER_S3_CAPACITY_BYTES": "-5"}, "s3_capacity_bytes"),
        ({"DAVSERVER_HISTORY_INTERVAL": "-1"}, "history_interval"),
        ({"DAVSERVER_UPLOAD_EXPIRY": "0"}, "upload_expiry"),
        ({"DAVSERVER_COMPRESSION": "gzip"}, "compression"),
    ],
)
def test_invalid_values_name_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load(None, environ=env)


def test_public_url_keeps_no_trailing_slash() -> None:
    settings = load(None, environ={"DAVSERVER_PUBLIC_URL": "https://example.com/files/"})
    assert settings.public_base == "https://example.com/files"
    assert load(None, environ={"DAVSERVER_LOG_LEVEL": "DEBUG"}).log_level == "DEBUG"


def test_config_discovery_order(tmp_path: Path) -> None:
    given, named = write_config(tmp_path, ""), tmp_path / "named.toml"
    named.write_text("", encoding="utf-8")
    first, second = tmp_path / "a/davserver.toml", tmp_path / "b/davserver.toml"
    second.parent.mkdir()
    second.write_text("", encoding="utf-8")
    env = {"DAVSERVER_CONFIG": str(named)}
    assert find_config(given, env, [first, second]) == given
    assert find_config(None, env, [first, second]) == named
    assert find_config(None, {}, [first, second]) == second
    assert find_config(None, {}, [first]) is None
    with pytest.raises(SettingsError, match="--config: no config file"):
        find_config(tmp_path / "missing.toml", {}, [])
    with pytest.raises(SettingsError, match="DAVSERVER_CONFIG: no config file"):
        find_config(None, {"DAVSERVER_CONFIG": str(tmp_path / "missing.toml")}, [])


def test_data_dir_in_a_config_file_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc/davserver.toml"
    config.write_text('data_dir = "store"\n', encoding="utf-8")
    assert load(config, environ={}).data_dir == tmp_path / "etc/store"
    assert load(config, environ={"DAVSERVER_DATA_DIR": "here"}).data_dir == Path("here")
    config.write_text(f'data_dir = "{tmp_path}/abs"\n', encoding="utf-8")
    assert load(config, environ={}).data_dir == tmp_path / "abs"


def test_direct_transfers_need_s3_and_sane_urls() -> None:
    with pytest.raises(SettingsError, match="direct_transfers"):
        load(environ={"DAVSERVER_DIRECT_TRANSFERS": "true"})
    s3 = {
        "DAVSERVER_S3_ENDPOINT": "s3:8333",
        "DAVSERVER_S3_ACCESS_KEY": "k",
        "DAVSERVER_S3_SECRET_KEY": "s",
        "DAVSERVER_DIRECT_TRANSFERS": "true",
    }
    assert load(environ=s3).direct_transfers
    with pytest.raises(SettingsError, match="transfer_url_ttl"):
        load(environ={**s3, "DAVSERVER_TRANSFER_URL_TTL": "0"})
    for bad in ("s3.example.com", "https://s3.example.com/bucket", "ftp://s3"):
        with pytest.raises(SettingsError, match="s3_public_url"):
            load(environ={**s3, "DAVSERVER_S3_PUBLIC_URL": bad})
    public = load(environ={**s3, "DAVSERVER_S3_PUBLIC_URL": "https://s3.example.com"})
    assert public.s3_public_url == "https://s3.example.com"


@pytest.mark.parametrize(
    "encryption",
    [{"DAVSERVER_ENCRYPTION": "true"}, {"DAVSERVER_ENCRYPTION_KEY_FILE": "/etc/davserver/key"}],
)
def test_direct_transfers_are_refused_with_encryption(encryption: dict[str, str]) -> None:
    s3 = {
        "DAVSERVER_S3_ENDPOINT": "s3:8333",
        "DAVSERVER_S3_ACCESS_KEY": "k",
        "DAVSERVER_S3_SECRET_KEY": "s",
    }
    assert load(environ={**s3, **encryption}).encrypts
    with pytest.raises(SettingsError, match="direct_transfers: cannot be used with encryption"):
        load(environ={**s3, **encryption, "DAVSERVER_DIRECT_TRANSFERS": "true"})


def test_notify_push_port_and_url() -> None:
    assert load(environ={}).notify_push_listen_port == 8081  # the HTTP port + 1
    assert load(environ={"DAVSERVER_PORT": "0"}).notify_push_listen_port == 0  # a free one
    given = load(environ={"DAVSERVER_NOTIFY_PUSH_PORT": "7867"})
    assert given.notify_push_listen_port == 7867
    bad = {
        "DAVSERVER_NOTIFY_PUSH_PORT": "8080",
        "DAVSERVER_PORT": "65535",
        "DAVSERVER_NOTIFY_PUSH_URL": "https://cloud.example.com/push/ws",
    }
    for key, value in bad.items():
        with pytest.raises(SettingsError, match="notify_push"):
            load(environ={key: value})
    assert load(environ={"DAVSERVER_PORT": "65535", "DAVSERVER_NOTIFY_PUSH": "false"}).port
    url = "wss://cloud.example.com/push/ws"
    assert load(environ={"DAVSERVER_NOTIFY_PUSH_URL": url}).notify_push_url == url
