"""A fetcher for partner-supplied URLs that cannot be turned against our own network (SSRF).

Every hop (the first URL and each redirect) is parsed, its host resolved once, and every
address it resolves to vetted: private, loopback, link-local (cloud metadata), shared,
multicast, reserved and unspecified addresses are refused unless the policy's test allow-list
names the host or the address. The connection then goes to the vetted address itself, never the
name again, so a DNS answer that changes between check and connect (rebinding) gains nothing;
the Host header, SNI and certificate check still use the name. A total deadline, enforced by a
watchdog that shuts the socket down, stops pages that drip a byte a second; a size cap stops
pages that never end. `fetch` never raises: what went wrong lands in `Page.error`.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import charset_normalizer
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import LocationParseError, NewConnectionError, ProtocolError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import Url, parse_url
from urllib3.util.ssl_match_hostname import CertificateError

from mdfledger.clock import ensure_utc, utcnow

__all__ = ["FetchPolicy", "Page", "fetch", "parse_allow_hosts"]

USER_AGENT = "mdfledger-verifier/1 (+proof check)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
EXCERPT_CHARS = 500
_CHUNK = 64 * 1024
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges `is_global` does not already rule out on every supported Python, named for the message.
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # carries an IPv4 address in its low 32 bits
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch. `allow_hosts` is for tests only (empty in production): host names,
    addresses or CIDR ranges that may be private or loopback, e.g. {"127.0.0.1"}.
    `ca_certs` is a PEM bundle to trust instead of the system store (tests, private CAs)."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 15.0
    max_bytes: int = 2 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = USER_AGENT
    allow_hosts: frozenset[str] = frozenset()
    ca_certs: str | None = None
    _allowed_names: frozenset[str] = field(init=False, repr=False, compare=False)
    _allowed_networks: tuple[_Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_bytes < 1 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")
        names, networks = set(), []
        for entry in self.allow_hosts:
            entry = entry.strip().lower().strip("[]")
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.rstrip("."))
        object.__setattr__(self, "allow_hosts", frozenset(self.allow_hosts))
        object.__setattr__(self, "_allowed_names", frozenset(names))
        object.__setattr__(self, "_allowed_networks", tuple(networks))

    def allows(self, host: str, address: _IPAddress | None = None) -> bool:
        """True when the test allow-list names this host or contains this address."""
        if host.lower().rstrip(".") in self._allowed_names:
            return True
        return address is not None and any(
            address.version == net.version and address in net for net in self._allowed_networks
        )


def parse_allow_hosts(text: str | Iterable[str] | None) -> frozenset[str]:
    """Read a setting such as "127.0.0.1, localhost 10.0.0.0/8" into an allow-list."""
    if text is None:
        return frozenset()
    items = re.split(r"[\s,]+", text) if isinstance(text, str) else list(text)
    return frozenset(item.strip() for item in items if item and item.strip())


@dataclass(frozen=True)
class Page:
    """What one fetch saw. `error` says in words what went wrong (None when the server
    answered, whatever the status); `transient` marks trouble a retry may not repeat
    (timeouts, resets, 5xx, 429); `refused` marks URLs the policy would not fetch."""

    requested_url: str
    final_url: str
    fetched_at: datetime
    status: int | None = None
    redirects: tuple[str, ...] = ()
    content_type: str = ""
    encoding: str | None = None
    title: str = ""
    description: str = ""  # <meta name=description> and og:/twitter: title and description
    text: str = ""
    excerpt: str = ""
    sha256: str = ""  # of the body bytes read; empty when no answer came
    bytes_read: int = 0
    truncated: bool = False
    elapsed: float = 0.0
    error: str | None = None
    transient: bool = False
    refused: bool = False


class _Stop(Exception):
    """Ends a fetch early; carries the words for Page.error."""

    def __init__(self, error: str, *, transient: bool = False, refused: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.transient = transient
        self.refused = refused


def _seconds(value: float) -> str:
    return f"{value:g} s"


# -- addresses ---------------------------------------------------------------------------------


def _address_problem(ip: _IPAddress) -> str | None:
    """Why an address must not be fetched ("a link-local address"), or None when public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _address_problem(embedded)
            if inner:
                return f"{inner} (inside an IPv6 address)"
    if ip in _METADATA:
        return "link-local address (cloud metadata)"
    checks = (
        (ip.is_unspecified, "unspecified address"),
        (ip.is_loopback, "loopback address"),
        (ip.is_link_local, "link-local address"),
        (ip.is_multicast, "multicast address"),
        (ip.version == 4 and ip in _SHARED, "shared address space (carrier-grade NAT) address"),
        (ip.is_private, "private address"),
        (ip.is_reserved, "reserved address"),
        (not ip.is_global, "non-public address"),
    )
    for flagged, words in checks:
        if flagged:
            return words
    return None


def _article(words: str) -> str:
    return f"an {words}" if words[0] in "aeiou" else f"a {words}"


def _vetted_addresses(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """Resolve once and vet every answer: one bad address refuses the host."""
    literal = host.strip("[]")
    try:
        infos = socket.getaddrinfo(literal, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        transient = exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", None))
        raise _Stop(f"could not resolve host {host}", transient=transient) from exc
    except (UnicodeError, OSError) as exc:
        raise _Stop(f"could not resolve host {host}") from exc
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0])
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        problem = _address_problem(ip)
        if problem and not policy.allows(literal, ip):
            if text == literal or str(ip) == literal:
                raise _Stop(f"refused: {ip} is {_article(problem)}", refused=True)
            raise _Stop(f"refused: {host} resolves to {ip}, {_article(problem)}", refused=True)
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise _Stop(f"could not resolve host {host}")
    return addresses


# -- one hop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    url: str  # normalised, without fragment
    scheme: str
    host: str  # as in the URL: IDNA-encoded, IPv6 in brackets
    port: int
    request_target: str
    host_header: str


def _target(url: str) -> _Target:
    try:
        parts = parse_url(url.strip())
    except (LocationParseError, ValueError, UnicodeError) as exc:
        raise _Stop(f"not a valid web address: {url}") from exc
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        if not scheme:
            raise _Stop(
                "refused: not a web address (it must start with http:// or https://)", refused=True
            )
        raise _Stop(
            f"refused: {scheme}: addresses are not fetched (only http and https)", refused=True
        )
    if parts.auth is not None:
        raise _Stop("refused: addresses with a user name or password are not fetched", refused=True)
    host = (parts.host or "").lower()
    if not host or host in ("[]", "."):
        raise _Stop(f"not a valid web address: {url}")
    default_port = 443 if scheme == "https" else 80
    port = parts.port if parts.port is not None else default_port
    path = parts.path or "/"
    request_target = path + (f"?{parts.query}" if parts.query is not None else "")
    host_header = host if port == default_port else f"{host}:{port}"
    normalised = Url(scheme, None, host, parts.port, path, parts.query, None).url
    return _Target(normalised, scheme, host, port, request_target, host_header)


class _Watchdog:
    """Shuts the current socket down when the total deadline passes: a read timeout alone never
    fires on a server that sends a byte a second, in the headers or the body."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._conn: HTTPConnection | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, conn: HTTPConnection | None) -> None:
        with self._lock:
            self._conn = conn
            if self.fired:
                _shutdown(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            _shutdown(self._conn)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(conn: HTTPConnection | None) -> None:
    sock = getattr(conn, "sock", None)  # the raw socket is set before the TLS handshake too
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _caused_by(exc: BaseException, *types: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, types):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Fetch:
    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        self.watchdog = _Watchdog(policy.deadline)
        self.redirects: list[str] = []

    def remaining(self) -> float:
        left = self.policy.deadline - (time.monotonic() - self.started)
        if left <= 0 or self.watchdog.fired:
            raise self.timed_out()
        return left

    def timed_out(self) -> _Stop:
        return _Stop(f"timed out after {_seconds(self.policy.deadline)}", transient=True)

    def connect(self, target: _Target) -> HTTPConnection:
        policy = self.policy
        bare_host = target.host.strip("[]").rstrip(".")
        last: _Stop | None = None
        for address in _vetted_addresses(target.host, target.port, policy):
            timeout = min(policy.connect_timeout, self.remaining())
            if target.scheme == "https":
                conn: HTTPConnection = HTTPSConnection(
                    address,
                    target.port,
                    timeout=timeout,
                    server_hostname=bare_host,
                    assert_hostname=bare_host,
                    cert_reqs="CERT_REQUIRED",
                    ca_certs=policy.ca_certs,
                )
            else:
                conn = HTTPConnection(address, target.port, timeout=timeout)
            self.watchdog.watch(conn)
            try:
                conn.connect()
                return conn
            except Exception as exc:  # each address gets its chance; the last error is kept
                conn.close()
                last = self.connect_error(exc, bare_host, timeout)
                if not last.transient:
                    raise last from exc
        raise last or _Stop(f"could not connect to {bare_host}", transient=True)

    def connect_error(self, exc: BaseException, host: str, timeout: float) -> _Stop:
        if self.watchdog.fired:
            return self.timed_out()
        if _caused_by(exc, ssl.SSLCertVerificationError, CertificateError):
            return _Stop(f"TLS certificate not valid for {host}")
        if _caused_by(exc, ssl.SSLError, Urllib3SSLError):
            return _Stop(f"TLS handshake with {host} failed")
        if _caused_by(exc, ConnectionRefusedError):
            return _Stop(f"connection refused by {host}", transient=True)
        if _caused_by(exc, socket.timeout, TimeoutError) or (
            isinstance(exc, Urllib3TimeoutError) and not isinstance(exc, NewConnectionError)
        ):
            return _Stop(
                f"timed out connecting to {host} after {_seconds(timeout)}", transient=True
            )
        return _Stop(f"could not connect to {host}", transient=True)

    def answer_error(self, exc: BaseException, host: str) -> _Stop:
        if self.watchdog.fired:
            return self.timed_out()
        if _caused_by(exc, socket.timeout, TimeoutError, Urllib3TimeoutError):
            wait = _seconds(self.policy.read_timeout)
            words = f"timed out waiting for {host} to answer (no data for {wait})"
            return _Stop(words, transient=True)
        if _caused_by(exc, http.client.RemoteDisconnected, ConnectionError):
            return _Stop(f"connection reset by {host}", transient=True)
        if _caused_by(exc, http.client.HTTPException):
            return _Stop(f"{host} did not answer in HTTP")
        return _Stop(f"connection to {host} failed", transient=True)

    def request(self, target: _Target) -> tuple[HTTPConnection, Any]:
        conn = self.connect(target)
        try:
            conn.timeout = min(self.policy.read_timeout, self.remaining())
            conn.request(
                "GET",
                target.request_target,
                headers={
                    "Host": target.host_header,
                    "User-Agent": self.policy.user_agent,
                    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
                preload_content=False,
                decode_content=True,
            )
            return conn, conn.getresponse()
        except _Stop:
            conn.close()
            raise
        except Exception as exc:
            conn.close()
            raise self.answer_error(exc, target.host) from exc

    def read_body(self, response: Any, host: str) -> tuple[bytes, bool, _Stop | None]:
        """Up to the size cap; a deadline or a broken connection keeps what arrived."""
        cap = self.policy.max_bytes
        body = bytearray()
        try:
            while True:
                self.remaining()
                # read1 returns what one socket read brings, so a drip cannot hold us past the
                # deadline the way a read of a fixed size would.
                chunk = response.read1(min(_CHUNK, cap + 1 - len(body)))
                if not chunk:
                    if self.watchdog.fired:
                        raise self.timed_out()
                    return bytes(body), False, None
                body += chunk
                if len(body) > cap:
                    return bytes(body[:cap]), True, None
        except _Stop as stop:
            return bytes(body[:cap]), False, stop
        except Exception as exc:
            stop = self.answer_error(exc, host)
            if isinstance(exc, ProtocolError | http.client.IncompleteRead) and not stop.transient:
                words = f"{host} closed the connection before the page finished"
                stop = _Stop(words, transient=True)
            return bytes(body[:cap]), False, stop

    def run(self, url: str) -> dict[str, Any]:
        seen: list[str] = []
        current = url
        while True:
            target = _target(current)
            result: dict[str, Any] = {"final_url": target.url}
            if target.url in seen:
                chain = [*seen[seen.index(target.url) :], target.url]
                raise _Stop("redirect loop: " + " -> ".join(chain))
            seen.append(target.url)
            conn, response = self.request(target)
            try:
                status = response.status
                location = response.headers.get("Location")
                if status in REDIRECT_STATUSES and location:
                    if len(self.redirects) >= self.policy.max_redirects:
                        raise _Stop(f"too many redirects ({len(self.redirects) + 1})")
                    current = _join(target.url, location)
                    self.redirects.append(current)
                    continue
                body, truncated, stop = self.read_body(response, target.host)
                result.update(
                    status=status,
                    content_type=response.headers.get("Content-Type", ""),
                    body=body,
                    truncated=truncated,
                )
                if stop is not None:
                    result.update(error=stop.error, transient=stop.transient)
                elif status >= 500 or status == 429:
                    result.update(transient=True)
                return result
            finally:
                conn.close()


def _join(base: str, location: str) -> str:
    return urljoin(base, location.strip())


# -- decoding and text ---------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Browsers read these labels as windows-1252 (WHATWG Encoding); so do we.
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"})


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode(body: bytes, header_charset: str | None, *, html: bool) -> tuple[str, str]:
    """Text and the encoding used: BOM, then Content-Type, then <meta charset>, then UTF-8 if it
    fits, then a guess; undecodable bytes become U+FFFD rather than an error."""
    encoding = next((name for bom, name in _BOMS if body.startswith(bom)), None)
    encoding = encoding or _codec(header_charset)
    if encoding is None and html:
        found = _META_CHARSET.search(body[:4096])
        encoding = _codec(found.group(1).decode("ascii", "replace")) if found else None
    if encoding is None:
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            best = charset_normalizer.from_bytes(body[:65536]).best()
            encoding = _codec(best.encoding if best else None) or "cp1252"
    return body.decode(encoding, errors="replace"), encoding


_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption"}
    | {"figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li"}
    | {"main", "nav", "ol", "option", "p", "pre", "section", "table", "td", "th", "tr", "ul"}
)
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript", "svg"})
_META_NAMES = frozenset(
    {"description", "og:title", "og:description", "twitter:title", "twitter:description"}
)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.meta: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = {key: value or "" for key, value in attrs}
            name = (values.get("name") or values.get("property") or "").lower()
            if name in _META_NAMES and values.get("content"):
                self.meta.append(values["content"])
        elif tag in _HIDDEN_TAGS:
            self._hidden += 1
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def html_text(markup: str) -> tuple[str, str, str]:
    """(title, description, visible text) of an HTML document, whitespace collapsed."""
    parser = _TextParser()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser can trip on broken markup; keep what it read so far
        pass
    description = " ".join(dict.fromkeys(_collapse(m) for m in parser.meta))
    return _collapse("".join(parser.title))[:500], description, _collapse("".join(parser.parts))


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text.rfind(" ", 0, EXCERPT_CHARS)
    return text[: cut if cut > EXCERPT_CHARS // 2 else EXCERPT_CHARS] + " …"


def _media_type(header: str, body: bytes) -> tuple[str, str | None]:
    if header:
        message = Message()
        message["Content-Type"] = header
        return message.get_content_type(), message.get_param("charset")  # type: ignore[return-value]
    head = body[:1024].lstrip().lower()
    if head.startswith(b"%pdf"):
        return "application/pdf", None
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
        return "text/html", None
    return "application/octet-stream", None


def _page_text(header: str, body: bytes) -> dict[str, Any]:
    media, charset = _media_type(header, body)
    shown = {"content_type": media}
    is_html = media in ("text/html", "application/xhtml+xml")
    if not body or not (is_html or media.startswith("text/")):
        return shown  # a PDF or an image: no text to search here
    text, encoding = decode(body, charset if isinstance(charset, str) else None, html=is_html)
    if is_html:
        title, description, visible = html_text(text)
    else:
        title, description, visible = "", "", _collapse(text)
    return shown | {
        "encoding": encoding,
        "title": title,
        "description": description,
        "text": visible,
        "excerpt": _excerpt(visible),
    }


# -- the public entry point ------------------------------------------------------------------


def fetch(url: str, policy: FetchPolicy | None = None, *, now: datetime | None = None) -> Page:
    """GET `url` under `policy`, following redirects; never raises (see Page.error)."""
    policy = policy or FetchPolicy()
    fetched_at = ensure_utc(now) if now is not None else utcnow()
    attempt = _Fetch(policy)
    fields: dict[str, Any] = {"final_url": url}
    try:
        fields = attempt.run(url)
    except _Stop as stop:
        final = attempt.redirects[-1] if attempt.redirects else url
        fields = {"final_url": final, "error": stop.error}
        fields.update(transient=stop.transient, refused=stop.refused)
    except Exception as exc:  # a bug must not take the check (or the job) down with it
        fields = {"final_url": url, "error": f"unexpected error ({type(exc).__name__})"}
    finally:
        attempt.watchdog.cancel()
    body: bytes = fields.pop("body", b"")
    if "content_type" in fields:
        fields.update(_page_text(fields.pop("content_type"), body))
    return Page(
        requested_url=url,
        fetched_at=fetched_at,
        redirects=tuple(attempt.redirects),
        sha256=hashlib.sha256(body).hexdigest() if "status" in fields else "",
        bytes_read=len(body),
        elapsed=round(time.monotonic() - attempt.started, 3),
        **fields,
    )
