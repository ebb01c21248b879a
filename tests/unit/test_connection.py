"""Temporal connection settings: flags over the cluster file over environment configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from client.connection import BadConnectionSettings, TemporalFlags, describe, resolve

NO_ENV: dict[str, str] = {}


def test_defaults_without_any_configuration(tmp_path: Path) -> None:
    config = resolve(TemporalFlags(), environ={"HOME": str(tmp_path)})
    assert config["target_host"] == "localhost:7233"
    assert config["namespace"] == "default"
    assert not config.get("tls")
    assert describe(config) == "localhost:7233 (namespace default, plaintext)"


def test_environment_variables_apply_below_the_cluster_file(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "TEMPORAL_ADDRESS": "env.example:7233",
        "TEMPORAL_NAMESPACE": "env-ns",
        "TEMPORAL_API_KEY": "secret",
    }
    from_env = resolve(TemporalFlags(), environ=env)
    assert (from_env["target_host"], from_env["namespace"]) == ("env.example:7233", "env-ns")
    assert from_env["api_key"] == "secret" and from_env["tls"]
    assert "secret" not in describe(from_env) and "API key" in describe(from_env)

    local = resolve(TemporalFlags(), address="127.0.0.1:9", namespace="ns", environ=env)
    assert (local["target_host"], local["namespace"]) == ("127.0.0.1:9", "ns")

    flagged = resolve(
        TemporalFlags(address="flag:1", namespace="flag-ns"), address="127.0.0.1:9", environ=env
    )
    assert (flagged["target_host"], flagged["namespace"]) == ("flag:1", "flag-ns")


def test_a_toml_profile_with_mtls(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text(f"-----{name}-----")
    toml = tmp_path / "temporal.toml"
    toml.write_text(
        f"""
[profile.prod]
address = "prod.example:7233"
namespace = "prod"
[profile.prod.tls]
server_ca_cert_path = "{tmp_path / "ca.pem"}"
client_cert_path = "{tmp_path / "client.pem"}"
client_key_path = "{tmp_path / "client.key"}"
"""
    )
    config = resolve(TemporalFlags(profile="prod", config_file=toml), environ=NO_ENV)
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----client.pem-----"
    assert describe(config) == "prod.example:7233 (namespace prod, mTLS)"


def test_tls_flags_override_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"ca")
    config = resolve(TemporalFlags(tls_ca=ca, tls_server_name="temporal.internal"), environ=NO_ENV)
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.server_root_ca_cert, tls.domain) == (b"ca", "temporal.internal")


def test_a_local_cluster_file_ignores_the_environment(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "TEMPORAL_NAMESPACE": "elsewhere",
        "TEMPORAL_API_KEY": "secret",
        "TEMPORAL_PROFILE": "prod",  # absent: an error, were the environment read
    }
    local = resolve(TemporalFlags(), address="127.0.0.1:9", use_environment=False, environ=env)
    assert describe(local) == "127.0.0.1:9 (namespace default, plaintext)"
    flagged = resolve(
        TemporalFlags(namespace="ns", api_key="key"),
        address="127.0.0.1:9",
        use_environment=False,
        environ=env,
    )  # the flags still count
    assert describe(flagged) == "127.0.0.1:9 (namespace ns, TLS, API key)"
    with pytest.raises(BadConnectionSettings, match="do not apply to a local"):
        resolve(TemporalFlags(profile="prod"), use_environment=False, environ=env)


def test_tls_flags_merge_into_the_environments_tls(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text(f"-----{name}-----")
    env = {
        "HOME": str(tmp_path),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem"),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "client.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "client.key"),
    }
    config = resolve(TemporalFlags(tls_server_name="temporal.internal"), environ=env)
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.domain == "temporal.internal"
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key) == (
        b"-----ca.pem-----",
        b"-----client.pem-----",
        b"-----client.key-----",
    )
    (tmp_path / "other-ca.pem").write_bytes(b"other")
    replaced = resolve(TemporalFlags(tls_ca=tmp_path / "other-ca.pem"), environ=env)["tls"]
    assert isinstance(replaced, TLSConfig)
    assert (replaced.server_root_ca_cert, replaced.client_cert) == (
        b"other",
        b"-----client.pem-----",
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (TemporalFlags(tls_cert=Path("c.pem")), "--tls-cert and --tls-key go together"),
        (TemporalFlags(tls_ca=Path("/nonexistent/ca.pem")), "cannot read /nonexistent/ca.pem"),
        (TemporalFlags(config_file=Path("/nonexistent.toml")), "environment configuration"),
        (TemporalFlags(profile="nope"), "environment configuration"),
    ],
)
def test_unusable_settings_are_one_clear_error(flags: TemporalFlags, message: str) -> None:
    with pytest.raises(BadConnectionSettings, match=message):
        resolve(flags, environ=NO_ENV)
