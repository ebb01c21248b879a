"""Where and how to reach Temporal, for every client we make (worker, airctl, benchmarks).

Each setting comes from the first of: a command-line flag; the cluster file's (airctl only);
the SDK's environment configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`, and the profile named by `TEMPORAL_PROFILE` in the TOML
file at `TEMPORAL_CONFIG_FILE` or `~/.config/temporalio/temporal.toml`); the defaults
`localhost:7233` and `default`. A client of a local dev server (the cluster file `airctl up`
writes) skips the environment configuration: a prod profile must not reach it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.runtime import Runtime
from temporalio.service import KeepAliveConfig, TLSConfig

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"

T = TypeVar("T")


class BadConnectionSettings(Exception):
    """The connection settings are unusable (a file that cannot be read, a flag alone)."""


class TemporalFlags(BaseModel):
    """The connection flags as given; None where a flag was not given."""

    model_config = ConfigDict(frozen=True)

    address: str | None = None
    namespace: str | None = None
    api_key: str | None = None
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None
    profile: str | None = None
    config_file: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TemporalFlags:
        return cls(**{name: getattr(args, f"temporal_{name}") for name in cls.model_fields})

    def wants_tls(self) -> bool:
        return self.tls or any((self.tls_ca, self.tls_cert, self.tls_key, self.tls_server_name))


# field of TemporalFlags, its flag, metavar, help
_FLAGS = [
    ("address", "--temporal-address", "HOST:PORT", f"default {DEFAULT_ADDRESS}"),
    ("namespace", "--namespace", "NS", f"default {DEFAULT_NAMESPACE}"),
    ("api_key", "--api-key", "KEY", "implies TLS"),
    ("tls_ca", "--tls-ca", "PEM", "the server's CA"),
    ("tls_cert", "--tls-cert", "PEM", "client certificate (mTLS)"),
    ("tls_key", "--tls-key", "PEM", "client key (mTLS)"),
    ("tls_server_name", "--tls-server-name", "NAME", "SNI override"),
    ("profile", "--profile", "NAME", "a temporal.toml profile"),
    ("config_file", "--temporal-config-file", "TOML", "instead of TEMPORAL_CONFIG_FILE"),
]
_PATHS = {"tls_ca", "tls_cert", "tls_key", "config_file"}


def add_arguments(parser: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """The connection flags, the same on the worker and on airctl. `suppress_defaults`: a
    flag not given sets nothing (a subcommand's copy, beside the main parser's)."""
    g = parser.add_argument_group(
        "Temporal connection (flags over the cluster file over TEMPORAL_* / temporal.toml)"
    )
    unset = argparse.SUPPRESS if suppress_defaults else None  # None: argparse's own default
    for field, flag, metavar, text in _FLAGS:
        kind = Path if field in _PATHS else str
        g.add_argument(
            flag, dest=f"temporal_{field}", type=kind, metavar=metavar, help=text, default=unset
        )
    tls_default = argparse.SUPPRESS if suppress_defaults else False
    g.add_argument(
        "--tls",
        dest="temporal_tls",
        action="store_true",
        default=tls_default,
        help="TLS, system roots",
    )


def resolve(
    flags: TemporalFlags,
    *,
    address: str | None = None,
    namespace: str | None = None,
    use_environment: bool = True,
    environ: dict[str, str] | None = None,
) -> ClientConnectConfig:
    """The arguments for `Client.connect`; `address`/`namespace` are the cluster file's.

    Without `use_environment` (a local dev server) only the flags, `address`, `namespace` and
    the defaults count, so the connection is plaintext unless a flag says otherwise.
    """
    if bool(flags.tls_cert) != bool(flags.tls_key):
        raise BadConnectionSettings("--tls-cert and --tls-key go together")
    config: ClientConnectConfig = {}
    if use_environment:
        config = _environment(flags, environ)
    elif flags.profile or flags.config_file:
        raise BadConnectionSettings(
            "--profile and --temporal-config-file do not apply to a local stack's cluster file"
        )
    config["target_host"] = flags.address or address or config.get("target_host", DEFAULT_ADDRESS)
    config["namespace"] = (
        flags.namespace or namespace or config.get("namespace") or DEFAULT_NAMESPACE
    )
    if flags.api_key:
        config["api_key"] = flags.api_key
        config.setdefault("tls", True)
    if flags.wants_tls():
        config["tls"] = _merged_tls(flags, config.get("tls"))
    return config


def _merged_tls(flags: TemporalFlags, current: bool | TLSConfig | None) -> TLSConfig:
    """The environment's TLS with each TLS flag given put over it (the rest kept)."""
    base = current if isinstance(current, TLSConfig) else TLSConfig()
    return dataclasses.replace(
        base,
        domain=_over(flags.tls_server_name, base.domain),
        server_root_ca_cert=_over(_read(flags.tls_ca), base.server_root_ca_cert),
        client_cert=_over(_read(flags.tls_cert), base.client_cert),
        client_private_key=_over(_read(flags.tls_key), base.client_private_key),
    )


def _over(given: T | None, current: T | None) -> T | None:
    """A flag given wins over what the environment had."""
    return current if given is None else given


def local(address: str) -> ClientConnectConfig:
    """A local dev server's settings: plaintext, namespace default, no environment applied."""
    return resolve(TemporalFlags(), address=address, use_environment=False)


def describe(config: ClientConnectConfig) -> str:
    """`host:port (namespace ns, mTLS)`: for error messages and logs, secrets left out."""
    tls = config.get("tls", False)
    security = "plaintext"
    if isinstance(tls, TLSConfig):
        security = "mTLS" if tls.client_cert else "TLS"
    elif tls:
        security = "TLS"
    if config.get("api_key"):
        security += ", API key"
    return f"{config['target_host']} (namespace {config['namespace']}, {security})"


# HTTP/2 keepalive on the connection to Temporal: a link that silently drops packets fails
# its calls (a worker's polls, its heartbeats) and is reconnected within KEEP_ALIVE's interval
# and timeout, 17 s, rather than the SDK's default 45 s. The interval cannot be shorter: the
# Temporal server refuses pings more often than every 10 s (frontend.keepAliveMinTime) with
# GOAWAY "too_many_pings"; 2 s above it, a ping delayed on its way is no strike either.
KEEP_ALIVE = KeepAliveConfig(interval_millis=12_000, timeout_millis=5_000)


async def connect(config: ClientConnectConfig, runtime: Runtime | None = None) -> Client:
    """A Temporal client that speaks the workflows' pydantic models."""
    return await Client.connect(
        **config,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        keep_alive_config=KEEP_ALIVE,
    )


def _environment(flags: TemporalFlags, environ: dict[str, str] | None) -> ClientConnectConfig:
    if flags.config_file and not flags.config_file.is_file():
        # the SDK reads a missing file as an empty one; a file named on purpose must exist
        raise BadConnectionSettings(f"Temporal environment configuration: no {flags.config_file}")
    try:
        profile = ClientConfigProfile.load(
            flags.profile,
            config_source=flags.config_file,
            override_env_vars=environ,
        )
        return profile.to_client_connect_config()  # reads the TLS files it names
    except Exception as e:  # the bridge raises plain RuntimeErrors for bad files and profiles
        raise BadConnectionSettings(f"Temporal environment configuration: {e}") from e


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise BadConnectionSettings(f"cannot read {path}: {e.strerror}") from e
