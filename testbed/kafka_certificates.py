"""TLS material for the test broker's secure listeners, made with openssl: a test CA, a broker
certificate for 127.0.0.1/localhost in a PKCS#12 keystore, and a client certificate for the
listener that requires one (as a Strimzi KafkaUser's ``user.crt``/``user.key``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

KEYSTORE_PASSWORD = "sensorsim-test-keystore"


def make_certificates(directory: Path) -> Path:
    """A test CA (``ca.crt``), a broker certificate for 127.0.0.1/localhost signed by it in a
    PKCS#12 keystore (returned), and a client certificate signed by it (``user.crt``,
    ``user.key``). EC keys: quick to generate on a slow machine."""
    directory.mkdir(parents=True, exist_ok=True)
    keystore = directory / "broker.p12"
    if keystore.exists() and (directory / "user.crt").exists():
        return keystore
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3",
         "-subj", "/CN=sensorsim test CA"],
        ["req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "broker.crt", "-days", "3", "-extfile", "san.ext"],
        ["pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key", "-certfile", "ca.crt",
         "-out", keystore.name, "-passout", f"pass:{KEYSTORE_PASSWORD}"],
        # a client's certificate for TLS client authentication, as a Strimzi KafkaUser's
        ["req", *ec, "-keyout", "user.key", "-out", "user.csr", "-subj", "/CN=sensorsim-user"],
        ["x509", "-req", "-in", "user.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "user.crt", "-days", "3"],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(
            ["openssl", *step], cwd=directory, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"openssl {step[0]} failed:\n{result.stderr}")
    return keystore
