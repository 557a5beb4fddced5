"""Connecting to Temporal from settings (plain TCP, TLS, mTLS or an API key)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import TLSConfig

from cc_executor.backends.temporal.settings import TemporalSettings
from cc_executor.errors import CCExecutorError


class TemporalUnavailableError(CCExecutorError, ConnectionError):
    """The Temporal server cannot be reached (nothing was submitted)."""


async def connect(settings: TemporalSettings, *, identity: str | None = None) -> Client:
    """A client for ``settings``; the error names the address when the server cannot be reached."""
    tls: TLSConfig | bool = False
    if settings.uses_tls:
        tls = TLSConfig(
            client_cert=settings.tls_cert.read_bytes() if settings.tls_cert else None,
            client_private_key=settings.tls_key.read_bytes() if settings.tls_key else None,
            server_root_ca_cert=settings.tls_ca.read_bytes() if settings.tls_ca else None,
        )
    try:
        return await Client.connect(
            settings.address, namespace=settings.namespace, tls=tls, api_key=settings.api_key, identity=identity
        )
    except RuntimeError as exc:
        raise TemporalUnavailableError(f"cannot reach the Temporal server at {settings.address}: {exc}") from exc
