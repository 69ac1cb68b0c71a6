"""Connection settings shared by ``Client`` and ``AsyncClient``: target, key, TLS, options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"

PemSource = Union[bytes, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TlsConfig:
    """TLS towards the gateway: ``ca_cert`` to trust a private CA (None: system roots),
    ``client_cert`` + ``client_key`` for mutual TLS. Each is PEM bytes or a file path.
    ``server_name`` overrides the name checked in the server's certificate."""

    ca_cert: Optional[PemSource] = None
    client_cert: Optional[PemSource] = None
    client_key: Optional[PemSource] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("TlsConfig: client_cert and client_key go together (mutual TLS)")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca_cert, "ca_cert"),
            private_key=_pem(self.client_key, "client_key"),
            certificate_chain=_pem(self.client_cert, "client_cert"),
        )


def _pem(source: Optional[PemSource], name: str) -> Optional[bytes]:
    if source is None:
        return None
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ValueError(f"TlsConfig.{name}: cannot read {source}: {e}") from e
    if b"-----BEGIN " not in data:
        raise ValueError(f"TlsConfig.{name}: not PEM (no -----BEGIN line)")
    return data


@dataclass(frozen=True)
class Settings:
    target: str
    metadata: Tuple[Tuple[str, str], ...]
    credentials: Optional[grpc.ChannelCredentials]
    options: List[Tuple[str, Union[str, int]]]


# Reconnect quickly after a replica restarts (grpc's own default backs off to 120 s), and
# notice a dead peer that never closed its connection through keepalive pings.
_CHANNEL_OPTIONS: List[Tuple[str, Union[str, int]]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.enable_retries", 0),
]


def resolve(
    target: Optional[str],
    api_key: Optional[str],
    tls: Union[None, bool, TlsConfig],
) -> Settings:
    """Fills what the caller left out from ``SENTINEL_ADDR`` / ``SENTINEL_API_KEY``.

    ``SENTINEL_ADDR`` may carry a scheme as the CLI writes it (``http://host:port``);
    ``https://`` turns TLS on with the system roots unless ``tls`` says otherwise."""
    if target is None:
        target = os.environ.get("SENTINEL_ADDR") or DEFAULT_TARGET
    if api_key is None:
        api_key = os.environ.get("SENTINEL_API_KEY") or None
    if target.startswith("https://"):
        target = target[len("https://") :]
        if tls is None:
            tls = True
    elif target.startswith("http://"):
        target = target[len("http://") :]
    target = target.rstrip("/")
    if not target:
        raise ValueError("target: empty address (set it or SENTINEL_ADDR)")

    options = list(_CHANNEL_OPTIONS)
    credentials: Optional[grpc.ChannelCredentials] = None
    if tls is True:
        credentials = grpc.ssl_channel_credentials()
    elif isinstance(tls, TlsConfig):
        credentials = tls.credentials()
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
    elif tls not in (None, False):
        raise TypeError("tls: expected True, False, None or a TlsConfig")

    metadata: Tuple[Tuple[str, str], ...] = ()
    if api_key:
        metadata = (("authorization", f"Bearer {api_key}"),)
    return Settings(target=target, metadata=metadata, credentials=credentials, options=options)


class ClientBase:
    """What both clients hold: the channel (opened by ``_open``), the stub, the key."""

    def __init__(
        self,
        target: Optional[str] = None,
        api_key: Optional[str] = None,
        tls: Union[None, bool, TlsConfig] = None,
        timeout: float = 30.0,
        retry_window: float = 60.0,
    ) -> None:
        from ._proto.sentinel.v1 import sentinel_pb2_grpc as pb_grpc

        settings = resolve(target, api_key, tls)
        self._channel = self._open(settings)
        self.target = settings.target
        self.stub = pb_grpc.SentinelStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = settings.metadata
        self._timeout = timeout
        self._retry_window = retry_window

    def _open(self, settings: Settings) -> Any:
        raise NotImplementedError
