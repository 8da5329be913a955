"""The SSRF-safe fetcher against a scripted server on loopback (no internet).

The server is on 127.0.0.1, so every test that should reach it allow-lists that address, as a
test deployment would with MDFLEDGER_VERIFY_ALLOW_HOSTS; the production policy (empty list)
must refuse it and everything else internal.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mdfledger.verification.fetch import FetchPolicy, Page, fetch, parse_allow_hosts
from mdfledger.verification.testserver import PageServer, html
from tests.verification import page_server
from tests.verification.page_server import LATIN1_TEXT, METADATA_URL, PDF_BYTES

LOCAL = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}))


@pytest.fixture(scope="module")
def server() -> Iterator[PageServer]:
    with page_server.start() as running:
        yield running


def get(server: PageServer, path: str, policy: FetchPolicy = LOCAL) -> Page:
    return fetch(server.url(path), policy)


# -- answers -----------------------------------------------------------------------------------


def test_a_live_page_gives_its_title_visible_text_and_a_hash_of_the_body(server):
    page = get(server, "/acme")

    assert page.status == 200 and page.error is None and not page.transient
    assert page.title == "Spring cloud days | Acme"
    assert "Brought to you by Acme Solutions, partner of the month." in page.text
    assert "Q3-CLOUD" in page.text
    assert "SECRET-IN-SCRIPT" not in page.text and "STYLE-ONLY" not in page.text
    assert page.content_type == "text/html" and page.encoding == "utf-8"
    body = page_server.ACME_PAGE.body
    assert page.sha256 == hashlib.sha256(body).hexdigest() and page.bytes_read == len(body)
    assert page.excerpt == page.text  # short pages are their own excerpt
    assert page.final_url == page.requested_url and page.redirects == ()


def test_the_request_names_the_verifier_and_the_host(server):
    get(server, "/acme?from=ua")

    seen = next(s for s in server.seen if s.path == "/acme?from=ua")
    assert seen.headers["user-agent"] == "mdfledger-verifier/1 (+proof check)"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"


def test_fetched_at_is_the_time_passed_in_or_now():
    moment = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
    assert fetch("file:///etc/passwd", FetchPolicy(), now=moment).fetched_at == moment
    before = datetime.now(UTC)
    assert fetch("file:///etc/passwd", FetchPolicy()).fetched_at >= before


@pytest.mark.parametrize("path, status", [("/missing", 404), ("/gone", 410)])
def test_client_errors_are_answers_not_transient(server, path, status):
    page = get(server, path)

    assert page.status == status and page.error is None and not page.transient


@pytest.mark.parametrize("path, status", [("/teapot-500", 500), ("/busy", 429)])
def test_server_errors_and_rate_limits_are_transient(server, path, status):
    page = get(server, path)

    assert page.status == status and page.transient


def test_a_closed_port_is_a_transient_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: the connection is refused
        page = fetch(f"http://127.0.0.1:{port}/", LOCAL)

    assert page.status is None and page.transient
    assert page.error == "connection refused by 127.0.0.1"


def test_an_unknown_host_is_reported_as_unresolvable():
    page = fetch("http://no-such-host.invalid/promo", FetchPolicy())

    assert page.status is None and page.error == "could not resolve host no-such-host.invalid"


# -- redirects ---------------------------------------------------------------------------------


def test_a_301_302_chain_is_followed_and_recorded(server):
    page = get(server, "/chain/start")

    assert page.status == 200 and page.title == "Spring cloud days | Acme"
    assert page.redirects == (server.url("/chain/middle"), server.url("/chain/end"))
    assert page.final_url == server.url("/chain/end")


def test_a_relative_location_is_resolved_against_the_current_url(server):
    page = get(server, "/relative/a/start")

    assert page.status == 200 and page.text == "relative landing"
    assert page.final_url == server.url("/relative/b/end?x=1")


def test_a_redirect_loop_is_named(server):
    page = get(server, "/loop/a")

    a, b = server.url("/loop/a"), server.url("/loop/b")
    assert page.error == f"redirect loop: {a} -> {b} -> {a}"
    assert page.status is None and not page.transient


def test_more_than_five_redirects_stop(server):
    page = get(server, "/hop/1")  # /hop/1 -> /hop/2 -> ... -> /hop/8: six would be needed

    assert page.error == "too many redirects (6)"
    assert len(page.redirects) == 5 and not page.transient
    assert get(server, "/hop/3").status == 404  # five hops exactly are fine: /hop/8 is missing


def test_a_redirect_to_the_metadata_address_is_refused_on_that_hop(server):
    before = len(server.seen)
    page = get(server, "/to-metadata")

    assert page.refused and page.status is None
    assert page.error == "refused: 169.254.169.254 is a link-local address (cloud metadata)"
    assert page.redirects == (METADATA_URL,) and page.final_url == METADATA_URL
    assert len(server.seen) == before + 1  # only the allowed first hop was requested


def test_a_redirect_to_another_scheme_is_refused(server):
    page = get(server, "/to-file")

    assert page.refused
    assert page.error == "refused: file: addresses are not fetched (only http and https)"


# -- refusals (SSRF) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, error",
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://192.168.1.1/admin", "192.168.1.1 is a private address"),
        ("http://172.16.5.4/", "172.16.5.4 is a private address"),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://100.64.0.1/", "100.64.0.1 is a shared address space"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://[::ffff:169.254.169.254]/", "link-local address (cloud metadata) (inside an IPv6"),
        ("http://localhost:9/", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f.1/", "resolves to 127.0.0.1, a loopback address"),
    ],
)
def test_internal_addresses_are_refused_without_connecting(url, error):
    started = time.monotonic()
    page = fetch(url, FetchPolicy())

    assert page.refused and not page.transient and page.status is None
    assert page.error is not None and page.error.startswith("refused: ")
    assert error in page.error
    assert time.monotonic() - started < 1  # no connection attempt, no timeout


@pytest.mark.parametrize(
    "url, error",
    [
        ("file:///etc/passwd", "refused: file: addresses are not fetched (only http and https)"),
        ("ftp://example.com/a", "refused: ftp: addresses are not fetched (only http and https)"),
        ("javascript:alert(1)", "refused: javascript: addresses are not fetched"),
        ("gopher://example.com/", "refused: gopher: addresses are not fetched"),
        ("www.example.com/promo", "refused: not a web address"),
        ("http://user:secret@example.com/", "refused: addresses with a user name or password"),
    ],
)
def test_other_schemes_and_credentials_are_refused(url, error):
    page = fetch(url, FetchPolicy())

    assert page.refused and page.error is not None and page.error.startswith(error)


def test_garbage_is_an_error_not_an_exception():
    for url in ["", "http://", "http://[::1", "http://example.com:99999/", "\x00\x01"]:
        page = fetch(url, FetchPolicy())
        assert page.error and page.status is None


def test_the_local_server_is_refused_unless_allow_listed(server):
    assert get(server, "/acme", FetchPolicy()).error == "refused: 127.0.0.1 is a loopback address"
    assert get(server, "/acme", FetchPolicy(allow_hosts=frozenset({"127.0.0.0/8"}))).status == 200


def test_a_name_is_checked_by_its_addresses_and_fetched_from_the_vetted_one(server):
    loopback = FetchPolicy(allow_hosts=parse_allow_hosts("127.0.0.1 ::1"))  # localhost: either
    by_address = fetch(server.url("/acme?via=name", host="localhost"), loopback)
    by_name = fetch(
        server.url("/acme?via=listed-name", host="localhost"),
        FetchPolicy(allow_hosts=parse_allow_hosts("localhost")),
    )

    assert by_address.status == 200 and by_name.status == 200
    seen = next(s for s in server.seen if s.path == "/acme?via=name")
    assert seen.headers["host"] == f"localhost:{server.port}"  # the name, on the pinned address


def test_allow_hosts_reads_a_setting():
    assert parse_allow_hosts(" 127.0.0.1, localhost  10.0.0.0/8 ") == {
        "127.0.0.1",
        "localhost",
        "10.0.0.0/8",
    }
    assert parse_allow_hosts("") == frozenset() and parse_allow_hosts(None) == frozenset()


# -- size and time limits ----------------------------------------------------------------------


def test_an_endless_page_stops_at_the_size_cap(server):
    page = get(server, "/endless")

    assert page.truncated and page.error is None and page.status == 200
    assert page.bytes_read == LOCAL.max_bytes == 2 * 1024 * 1024
    assert page.text.startswith("more more")


def test_a_small_cap_is_respected_exactly(server):
    page = get(server, "/acme", FetchPolicy(allow_hosts=LOCAL.allow_hosts, max_bytes=100))

    assert page.truncated and page.bytes_read == 100


@pytest.mark.parametrize("path", ["/drip", "/slow-headers"])
def test_a_slow_drip_stops_at_the_total_deadline(server, path):
    policy = FetchPolicy(allow_hosts=LOCAL.allow_hosts, deadline=1.0)
    started = time.monotonic()
    page = get(server, path, policy)
    took = time.monotonic() - started

    assert 0.9 < took < 2.0
    assert page.error == "timed out after 1 s" and page.transient
    assert 0.9 < page.elapsed < 2.0


def test_a_drip_keeps_what_arrived_before_the_deadline(server):
    page = get(server, "/drip", FetchPolicy(allow_hosts=LOCAL.allow_hosts, deadline=1.0))

    assert page.status == 200 and 1 <= page.bytes_read <= 5 and not page.truncated


# -- decoding ----------------------------------------------------------------------------------


def test_a_latin1_page_is_decoded_by_its_header(server):
    page = get(server, "/latin1")

    assert page.text == LATIN1_TEXT.replace("—", "?")
    assert page.encoding == "cp1252"  # browsers read ISO-8859-1 as windows-1252; so do we


def test_a_meta_charset_is_honoured(server):
    page = get(server, "/meta-charset")

    assert page.text == "Grüße €5" and page.encoding == "cp1252"


def test_an_unlabelled_non_utf8_page_is_detected_or_replaced_never_an_error(server):
    page = get(server, "/sniffed")

    assert page.error is None and page.status == 200
    assert "Die B" in page.text and "Müller" in page.text


def test_plain_text_is_searchable_as_is(server):
    page = get(server, "/plain")

    assert page.content_type == "text/plain" and page.title == ""
    assert page.text == "Plain words: Acme Solutions Q3-CLOUD"


def test_a_pdf_is_fetched_but_has_no_text(server):
    page = get(server, "/pdf")

    assert page.status == 200 and page.content_type == "application/pdf"
    assert page.text == "" and page.title == "" and page.excerpt == ""
    assert page.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()


def test_a_long_page_gets_a_short_excerpt():
    long_text = " ".join(f"word{n}" for n in range(400))
    with PageServer({"/long": html(f"<p>{long_text}</p>")}) as running:
        page = get(running, "/long")

    assert page.text == long_text
    assert len(page.excerpt) <= 503 and page.excerpt.endswith(" …")


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[PageServer, str]]:
    context, ca_file = page_server.make_tls(tmp_path_factory.mktemp("tls"))
    with PageServer({"/secure": html("<p>over TLS</p>", title="Secure")}, tls=context) as running:
        yield running, ca_file


def test_https_checks_the_certificate_against_the_name_not_the_pinned_address(tls_server):
    running, ca_file = tls_server
    policy = FetchPolicy(allow_hosts=frozenset({"localhost"}), ca_certs=ca_file)

    page = fetch(running.url("/secure", host="localhost"), policy)

    assert page.status == 200 and page.text == "over TLS", page.error


def test_a_certificate_for_another_name_is_not_valid(tls_server):
    running, ca_file = tls_server
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), ca_certs=ca_file)

    page = fetch(running.url("/secure"), policy)  # the certificate names localhost only

    assert page.status is None and not page.transient
    assert page.error == "TLS certificate not valid for 127.0.0.1"


def test_an_untrusted_authority_is_not_valid(tls_server):
    running, _ = tls_server

    page = fetch(running.url("/secure", host="localhost"), FetchPolicy(allow_hosts={"localhost"}))

    assert page.error == "TLS certificate not valid for localhost"


def test_policy_limits_must_be_positive():
    with pytest.raises(ValueError):
        FetchPolicy(deadline=0)
    with pytest.raises(ValueError):
        FetchPolicy(max_bytes=0)
