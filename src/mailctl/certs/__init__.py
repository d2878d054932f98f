"""TLS certificates: issuance over ACME (``certs.issuer``, imported where an order runs:
the ACME client is heavy), live expiry probes, and which targets a probe may reach."""

from mailctl.certs.probe import ProbeResult, probe_certificate
from mailctl.certs.targets import Targets

__all__ = ["ProbeResult", "Targets", "probe_certificate"]
