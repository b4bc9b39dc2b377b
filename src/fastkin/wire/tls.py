"""TLS for ``fastkin serve --tls``: a self-signed certificate (the ``cryptography`` package, in the server extra)."""
from __future__ import annotations

import datetime as _dt
import os


def self_signed_certificate(directory: str, hosts=("localhost", "127.0.0.1", "::1"),
                            days: int = 365) -> tuple[str, str]:
    """Write ``cert.pem`` and ``key.pem`` (an EC P-256 key) for ``hosts`` into ``directory``; return their paths.

    The certificate is its own issuer and is marked as a CA (basicConstraints CA:TRUE, keyCertSign), as
    ``openssl req -x509`` makes them, so clients can trust ``cert.pem`` directly as a CA bundle
    (``AWS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``, ``keytool -importcert``, ``httpx verify=``)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fastkin local Kinesis"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fastkin")])
    sans: list = []
    for h in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pub), critical=False)
            .sign(key, hashes.SHA256()))
    os.makedirs(directory, exist_ok=True)
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _cert_hosts(host: str) -> tuple[str, ...]:
    import socket
    extra = () if host in ("", "0.0.0.0", "::") else (host,)
    return ("localhost", "127.0.0.1", "::1", socket.gethostname(), *extra)
