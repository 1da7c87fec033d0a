"""The credentials of the test control plane, written with openssl before any component starts:
a CA and the API server's certificate signed by it, the service-account signing key, the static
token file that makes ``ADMIN_TOKEN`` a member of ``system:masters``, and the kubeconfig that
every client (kubectl, helm, the controllers, the Python client) reads.

The API server checks the token against ``tokens.csv`` and presents a certificate for 127.0.0.1
and the in-cluster names, so clients verify the server against ``ca.crt`` as on a real cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ADMIN_TOKEN = "sensorsim-admin-token"


def _openssl(pki: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)


def write_pki(pki: Path) -> None:
    """Create ``pki`` with ``ca.crt``/``ca.key``, ``apiserver.crt``/``apiserver.key``,
    ``sa.key`` and ``tokens.csv``."""
    pki.mkdir(parents=True)
    _openssl(
        pki,
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        "-subj", "/CN=sensorsim-test-ca", "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    _openssl(
        pki,
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
        "-keyout", "apiserver.key", "-out", "apiserver.csr",
    )  # fmt: skip
    (pki / "apiserver.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(
        pki,
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-extfile", "apiserver.ext",
        "-out", "apiserver.crt",
    )  # fmt: skip
    _openssl(pki, "genrsa", "-out", "sa.key", "2048")
    (pki / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n')


def write_kubeconfig(path: Path, server: str, ca_file: Path) -> None:
    """A kubeconfig for ``server`` as the admin user (``ADMIN_TOKEN``), namespace default."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sensorsim-test",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [
            {
                "name": "sensorsim-test",
                "context": {
                    "cluster": "sensorsim-test",
                    "user": "admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "sensorsim-test",
    }
    # JSON is valid YAML; every kubeconfig reader accepts it.
    path.write_text(json.dumps(config, indent=2))
