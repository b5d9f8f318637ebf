"""The receiver's error tree; each error knows its HTTP status, and none carries request bytes.

    IngestError
    ├── UnknownEndpoint         404  no endpoint of that name is configured
    ├── MalformedRequest        400  body or headers cannot be read as the provider's format
    ├── VerificationFailed      401  signature, key, basic-auth or timestamp did not check out
    ├── PayloadTooLarge         413  body over ``ingest.max_body_bytes``
    ├── UnsupportedMediaType    415  content type the provider never sends
    ├── InternalError           500  a bug of ours; logged with its traceback, never shown
    └── Unavailable             503  retryable by the PSP (answered with Retry-After)
        ├── PublishTimeout           Kafka did not acknowledge every record within the deadline
        ├── PublishFailed            Kafka refused a record (non-retryable inside the deadline)
        ├── Overloaded               too many requests in flight
        └── CertificateUnavailable   PayPal's certificate could not be fetched: timeout, network
                                     error, a 5xx, no free fetch slot (what it holds is a 401)

``VerificationFailed.reason`` is a short, fixed word (a metric label); ``detail`` is safe to show
the caller: it never contains a secret, a signature or body bytes.
"""

from __future__ import annotations

from typing import ClassVar


class IngestError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownEndpoint(IngestError):
    status = 404
    title = "Unknown endpoint"


class MalformedRequest(IngestError):
    status = 400
    title = "Malformed request"


class VerificationFailed(IngestError):
    status = 401
    title = "Verification failed"

    #: the fixed reasons, used as the ``reason`` label of the verification-failure metric
    REASONS: ClassVar[frozenset[str]] = frozenset(
        {
            "missing_header",  # a signature, timestamp or id header is absent
            "missing_signature",  # a signature inside the body (Adyen items, form fields) is absent
            "malformed_header",  # present but not in the scheme's format
            "signature_mismatch",  # well formed, but no key of the ring produced it
            "timestamp_too_old",
            "timestamp_in_future",
            "basic_auth_failed",
            "authorization_failed",  # a static Authorization header (Checkout.com) did not match
            # PayPal: cert URL not allowed; what was served is no usable certificate, or a 4xx;
            # chain, validity or subject wrong (a fetch that failed is CertificateUnavailable)
            "certificate_rejected",
        }
    )

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown verification failure reason {reason!r}")
        super().__init__(detail)
        self.reason = reason


class PayloadTooLarge(IngestError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(IngestError):
    status = 415
    title = "Unsupported media type"


class InternalError(IngestError):
    status = 500
    title = "Internal error"


class Unavailable(IngestError):
    status = 503
    title = "Service unavailable"


class PublishTimeout(Unavailable):
    title = "Kafka did not confirm in time"


class PublishFailed(Unavailable):
    title = "Kafka refused the records"


class Overloaded(Unavailable):
    title = "Too many requests in flight"


class CertificateUnavailable(Unavailable):
    title = "PayPal certificate unavailable"
