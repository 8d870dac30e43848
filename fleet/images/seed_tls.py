"""The TLS of a run's seed registries (fleet.core.seeds): a CA made for the run, a server
certificate per seed, and one client certificate the group's daemons present.

The registry accepts only clients whose certificate the run's CA signed, so no host outside
the run can read or write it; dockerd reads the CA and the client certificate from
/etc/docker/certs.d/HOST:PORT/ at each pull. Everything expires a day after the run made it
and the private keys never leave the run's hosts; nothing is reused by a later run.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LIFETIME = datetime.timedelta(days=1)
CLOCK_SKEW = datetime.timedelta(minutes=10)  # hosts whose clocks run a little behind


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _subject_name(address: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        return x509.DNSName(address)


@dataclass(frozen=True)
class KeyPair:
    certificate: bytes  # PEM
    key: bytes  # PEM, unencrypted: it is written only to the run's hosts, mode 0600


class SeedAuthority:
    """The run's CA; made on first use."""

    def __init__(self) -> None:
        self._now = datetime.datetime.now(datetime.UTC)

    @cached_property
    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = _key()
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False)
        certificate = (self._builder(_name("fleet seed CA"), key)
                       .issuer_name(_name("fleet seed CA"))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                       .add_extension(usage, True)
                       .sign(key, hashes.SHA256()))
        return key, certificate

    def _builder(self, subject: x509.Name, key: ec.EllipticCurvePrivateKey
                 ) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(self._now - CLOCK_SKEW)
                .not_valid_after(self._now + LIFETIME))

    @property
    def ca_certificate(self) -> bytes:
        return _pem(self._ca[1])

    def _leaf(self, common_name: str, usage: x509.ObjectIdentifier,
              names: list[x509.GeneralName]) -> KeyPair:
        ca_key, ca = self._ca
        key = _key()
        builder = (self._builder(_name(common_name), key).issuer_name(ca.subject)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
        return KeyPair(_pem(builder.sign(ca_key, hashes.SHA256())), _pem_key(key))

    def server(self, address: str) -> KeyPair:
        """The certificate of the registry reached at `address` (an IP or a host name)."""
        return self._leaf("fleet seed registry", ExtendedKeyUsageOID.SERVER_AUTH,
                          [_subject_name(address)])

    @cached_property
    def client(self) -> KeyPair:
        """What every daemon of the run presents to a seed's registry."""
        return self._leaf("fleet seed client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
