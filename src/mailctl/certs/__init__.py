"""TLS certificates: issuance over ACME and live expiry probes."""

from mailctl.certs.issuer import ChallengePublisher, IssuedCertificate, issue_certificate
from mailctl.certs.probe import ProbeResult, probe_certificate
from mailctl.certs.targets import Targets

__all__ = [
    "ChallengePublisher",
    "IssuedCertificate",
    "ProbeResult",
    "Targets",
    "issue_certificate",
    "probe_certificate",
]
