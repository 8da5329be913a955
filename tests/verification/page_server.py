"""The pages the page-check tests fetch, served on loopback by the package's scripted server
(mdfledger.verification.testserver, which the URL bench uses too), and a throwaway TLS
authority for the https tests. Nothing here touches the internet.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mdfledger.verification.testserver import (
    PageServer,
    Reply,
    Route,
    drip,
    endless,
    html,
    redirect,
    slow_headers,
)

METADATA_URL = "http://169.254.169.254/latest/meta-data/"
LATIN1_TEXT = "Café Müller — Straße"  # the dash is not Latin-1: it must decode as '?' there
META_CHARSET_PAGE = (
    '<html><head><meta charset="windows-1252"></head><body><p>Grüße €5</p></body></html>'
)
PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

ACME_PAGE = html(
    "<header><nav>Home</nav></header><h1>Spring cloud days</h1>"
    "<p>Brought to you by <b>Acme</b> Solutions, partner of the month.</p>"
    "<p>Use code <code>Q3-CLOUD</code> at checkout.</p>"
    "<script>var hidden = 'SECRET-IN-SCRIPT';</script><style>.x{content:'STYLE-ONLY'}</style>",
    title="Spring cloud days | Acme",
)


def routes() -> dict[str, Route]:
    chain = {f"/hop/{n}": redirect(f"/hop/{n + 1}") for n in range(1, 8)}
    return chain | {
        "/acme": ACME_PAGE,
        "/fuzzy": html("<p>Sponsored by ACME Solution in Q3-CLOUD week</p>", title="Promo"),
        "/accents": html("<p>MÜLLER   Café, Zürich</p><p>q3 - cloud</p>", title="Willkommen"),
        "/og": Reply(
            200,
            b'<html><head><meta property="og:description" content="Launch by Acme Solutions">'
            b"</head><body><div id=app></div></body></html>",
        ),
        "/promo": html("<p>Code PROMO-2024-ACME-SPRING</p>"),
        "/gone": html("<h1>Gone</h1>", title="Gone", status=410),
        "/chain/start": redirect("/chain/middle", 301),
        "/chain/middle": redirect("/chain/end", 302),
        "/chain/end": ACME_PAGE,
        "/relative/a/start": redirect("../b/end?x=1", 307),
        "/relative/b/end": html("<p>relative landing</p>"),
        "/loop/a": redirect("/loop/b"),
        "/loop/b": redirect("/loop/a"),
        "/to-metadata": redirect(METADATA_URL),
        "/to-file": redirect("file:///etc/passwd"),
        "/endless": endless(),
        "/drip": drip(0.25),
        "/slow-headers": slow_headers(0.25),
        "/latin1": Reply(
            200,
            f"<p>{LATIN1_TEXT}</p>".encode("latin-1", "replace"),
            "text/html; charset=ISO-8859-1",
        ),
        "/meta-charset": Reply(200, META_CHARSET_PAGE.encode("cp1252"), "text/html"),
        "/sniffed": Reply(
            200,
            ("<p>" + "Die Bücher über Größe und Maß kosten 5 € bei Müller. " * 20 + "</p>").encode(
                "cp1252"
            ),
            "text/html",
        ),
        "/plain": Reply(200, b"Plain words: Acme Solutions\n\nQ3-CLOUD\n", "text/plain"),
        "/pdf": Reply(200, PDF_BYTES, "application/pdf"),
        "/teapot-500": Reply(500, b"<h1>Internal Server Error</h1>"),
        "/busy": Reply(429, b"slow down", "text/plain", (("Retry-After", "5"),)),
    }


def start(*, tls: ssl.SSLContext | None = None) -> PageServer:
    return PageServer(routes(), tls=tls)


def make_tls(folder: Path, names: tuple[str, ...] = ("localhost",)) -> tuple[ssl.SSLContext, str]:
    """A one-off certificate authority and a server certificate for `names` (DNS names only),
    returned as a server TLS context and the path of the CA's PEM file for FetchPolicy.ca_certs."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdfledger test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file = folder / "server.pem"
    chain_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file)
    return context, str(ca_file)
