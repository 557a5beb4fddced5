"""Where the Temporal server is and how to reach it: flags or ``CC_EXECUTOR_TEMPORAL_*`` environment.

Shared by workers and front ends, so both sides read the same names. Importing this module needs no temporalio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cc_executor.errors import InvalidRequestError

ENV_PREFIX = "CC_EXECUTOR_TEMPORAL_"
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "cc-executor"
DEFAULT_HEARTBEAT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TemporalSettings:
    """Connection and run-placement settings. ``heartbeat_timeout_s`` is how long a silent worker may go before its
    run is retried elsewhere (workers heartbeat every second, so a few seconds is enough on a healthy network)."""

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls: bool = False
    api_key: str | None = field(default=None, repr=False)
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TemporalSettings:
        """Settings from ``CC_EXECUTOR_TEMPORAL_*``; ``overrides`` (flags) that are not None win."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name, "").strip()
            return value or None

        settings = cls(
            address=get("ADDRESS") or DEFAULT_ADDRESS,
            namespace=get("NAMESPACE") or DEFAULT_NAMESPACE,
            task_queue=get("TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            tls_cert=_path(get("TLS_CERT")),
            tls_key=_path(get("TLS_KEY")),
            tls_ca=_path(get("TLS_CA")),
            tls=(get("TLS") or "").lower() in ("1", "true", "yes"),
            api_key=get("API_KEY"),
            heartbeat_timeout_s=_seconds(get("HEARTBEAT_TIMEOUT"), DEFAULT_HEARTBEAT_TIMEOUT_S),
        )
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.api_key is not None or any((self.tls_cert, self.tls_key, self.tls_ca))

    def check(self) -> None:
        """Refuse half-given mTLS and unreadable files, naming the setting."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidRequestError(
                "mTLS needs both a client certificate and its key "
                f"({ENV_PREFIX}TLS_CERT / --tls-cert and {ENV_PREFIX}TLS_KEY / --tls-key)"
            )
        for name, path in (("TLS_CERT", self.tls_cert), ("TLS_KEY", self.tls_key), ("TLS_CA", self.tls_ca)):
            if path is not None and not path.is_file():
                flag = "--" + name.lower().replace("_", "-")
                raise InvalidRequestError(f"{ENV_PREFIX}{name} / {flag}: {str(path)!r} is not a readable file")
        if not self.address or ":" not in self.address:
            raise InvalidRequestError(f"the Temporal address {self.address!r} must be host:port")
        if not 1.0 <= self.heartbeat_timeout_s <= 3600:
            raise InvalidRequestError(
                f"{ENV_PREFIX}HEARTBEAT_TIMEOUT must be between 1 and 3600 seconds, got {self.heartbeat_timeout_s}"
            )


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _seconds(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise InvalidRequestError(f"{ENV_PREFIX}HEARTBEAT_TIMEOUT must be a number of seconds, got {value!r}") from None
