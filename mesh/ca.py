"""The local certificate authority: mints SPIFFE identities for the local mesh's mTLS.

At every start ``boutique up`` makes a fresh CA (it lives one day and only in the run
directory) and issues each sidecar and the ingress a certificate whose URI SAN is the workload's
SPIFFE id, ``spiffe://<trust domain>/ns/<namespace>/sa/<service>``, as istiod does on Kubernetes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LIFETIME = dt.timedelta(days=1)


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


class LocalCA:
    def __init__(
        self, directory: Path, trust_domain: str, lifetime: dt.timedelta = LIFETIME
    ) -> None:
        self.dir = directory
        self.trust_domain = trust_domain
        self.lifetime = lifetime
        self.dir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{trust_domain} local CA")]
        )
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.NameConstraints(
                    permitted_subtrees=[x509.UniformResourceIdentifier(trust_domain)],
                    excluded_subtrees=None,
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.root = self.dir / "root-cert.pem"
        self.root.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, spiffe_id: str, name: str) -> Identity:
        """A key and certificate for one workload, usable as TLS server and client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.lifetime)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        identity = Identity(self.dir / f"{name}-cert.pem", self.dir / f"{name}-key.pem")
        identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        identity.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        identity.key.chmod(0o600)
        return identity
