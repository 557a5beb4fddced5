"""The seam between front ends and runs (``protocol.Backend``) and its implementations.

``local.LocalBackend`` runs in this process. Front ends construct a backend and then use only the protocol.
"""

from cc_executor.backends.local import LocalBackend
from cc_executor.backends.protocol import (
    Backend,
    CancelReport,
    ListMemberState,
    ListOutcome,
    ListRequest,
    ResumeRequest,
    RunEvent,
    RunFilter,
    TranscriptChunk,
    TranscriptQuery,
)

__all__ = [
    "Backend",
    "CancelReport",
    "ListMemberState",
    "ListOutcome",
    "ListRequest",
    "LocalBackend",
    "ResumeRequest",
    "RunEvent",
    "RunFilter",
    "TranscriptChunk",
    "TranscriptQuery",
]
