"""Connection settings: environment defaults, schemes, API key metadata and TLS inputs."""

from __future__ import annotations

import pytest

from sentinel_sdk import TlsConfig
from sentinel_sdk._config import resolve

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_environment_fills_target_and_key(monkeypatch):
    monkeypatch.setenv("SENTINEL_ADDR", "http://gw.internal:50051")
    monkeypatch.setenv("SENTINEL_API_KEY", "k-123")
    s = resolve(None, None, None)
    assert s.target == "gw.internal:50051"
    assert s.metadata == (("authorization", "Bearer k-123"),)
    assert s.credentials is None


def test_explicit_arguments_win_and_https_means_tls(monkeypatch):
    monkeypatch.setenv("SENTINEL_ADDR", "http://ignored:1")
    monkeypatch.delenv("SENTINEL_API_KEY", raising=False)
    s = resolve("https://gw.example.com:443", None, None)
    assert s.target == "gw.example.com:443" and s.credentials is not None
    assert s.metadata == ()


def test_tls_config_reads_paths_and_names_bad_inputs(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(PEM)
    s = resolve("gw:1", None, TlsConfig(ca_cert=str(ca), server_name="gw.example.com"))
    assert s.credentials is not None
    assert ("grpc.ssl_target_name_override", "gw.example.com") in s.options
    with pytest.raises(ValueError, match="client_cert and client_key"):
        TlsConfig(client_cert=PEM).credentials()
    with pytest.raises(ValueError, match="ca_cert: not PEM"):
        TlsConfig(ca_cert=b"garbage").credentials()
    with pytest.raises(ValueError, match="client_key: cannot read"):
        TlsConfig(client_cert=PEM, client_key=str(tmp_path / "missing.pem")).credentials()
