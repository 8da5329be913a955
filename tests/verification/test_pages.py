"""The page check as finance sees it: outcome, score, the sentence, and the evidence."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mdfledger.verification.fetch import FetchPolicy, Page
from mdfledger.verification.outcome import Outcome
from mdfledger.verification.pages import check_page, find_marker
from mdfledger.verification.testserver import PageServer, Reply, html
from mdfledger.verification.url_bench import measure
from tests.verification import page_server
from tests.verification.page_server import METADATA_URL

LOCAL = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}))
NOW = datetime(2026, 3, 2, 14, 5, 33, tzinfo=UTC)
MARKERS = ["Acme Solutions", "Q3-CLOUD"]


@pytest.fixture(scope="module")
def server() -> Iterator[PageServer]:
    with page_server.start() as running:
        yield running


def check(server: PageServer, path: str, markers=MARKERS, policy=LOCAL, **kwargs):
    return check_page(server.url(path), markers, policy, now=NOW, **kwargs)


def test_a_live_page_with_every_marker_passes(server):
    finding = check(server, "/acme")

    assert finding.outcome is Outcome.PASS and finding.score == 100 and not finding.transient
    assert finding.summary == (
        f"Page is live (200) at {server.url('/acme')}; found: Acme Solutions, Q3-CLOUD"
    )
    markers = finding.evidence["markers"]
    assert [(m["marker"], m["found"], m["score"], m["match"]) for m in markers] == [
        ("Acme Solutions", True, 100, "exact"),
        ("Q3-CLOUD", True, 100, "exact"),
    ]
    assert "Brought to you by Acme Solutions, partner" in markers[0]["where"]
    assert markers[0]["in"] == "text"


def test_the_evidence_records_what_was_seen_and_serialises(server):
    finding = check(server, "/chain/start")

    evidence = json.loads(json.dumps(finding.evidence))
    assert evidence["requested_url"] == server.url("/chain/start")
    assert evidence["final_url"] == server.url("/chain/end")
    assert evidence["redirects"] == [server.url("/chain/middle"), server.url("/chain/end")]
    assert evidence["status"] == 200 and evidence["title"] == "Spring cloud days | Acme"
    assert len(evidence["sha256"]) == 64 and evidence["bytes"] > 0
    assert evidence["truncated"] is False and evidence["elapsed_seconds"] >= 0
    assert evidence["fetched_at"] == "2026-03-02T14:05:33+00:00"
    assert "Acme Solutions" in evidence["excerpt"]


def test_case_spacing_punctuation_and_accents_do_not_matter(server):
    finding = check(server, "/accents", ["Muller cafe", "zurich", "Q3-Cloud"])

    assert finding.outcome is Outcome.PASS and finding.score == 100
    assert finding.evidence["markers"][0]["where"] == "MÜLLER Café, Zürich q3 - cloud"


def test_a_close_spelling_passes_with_its_score(server):
    finding = check(server, "/fuzzy")

    assert finding.outcome is Outcome.PASS
    assert 90 <= finding.score < 100
    assert "found: Acme Solutions (close match, " in finding.summary
    assert "Q3-CLOUD" in finding.summary
    assert finding.evidence["markers"][0]["match"] == "close"


def test_a_close_spelling_with_other_numbers_is_another_marker(server):
    finding = check(server, "/promo", ["PROMO-2025-ACME-SPRING"])

    assert finding.outcome is Outcome.FAIL and finding.score < 90
    assert finding.summary == "Page is live (200) but does not mention: PROMO-2025-ACME-SPRING"


def test_a_missing_marker_fails_and_names_it(server):
    finding = check(server, "/acme", ["Acme Solutions", "Q4-EDGE"])

    assert finding.outcome is Outcome.FAIL and not finding.transient
    assert finding.summary == "Page is live (200) but does not mention: Q4-EDGE"
    assert finding.score < 90  # the lowest marker's score
    found = {m["marker"]: m["found"] for m in finding.evidence["markers"]}
    assert found == {"Acme Solutions": True, "Q4-EDGE": False}


def test_text_in_scripts_and_styles_is_not_visible(server):
    finding = check(server, "/acme", ["SECRET-IN-SCRIPT"])

    assert finding.outcome is Outcome.FAIL


def test_markers_in_the_title_and_social_descriptions_count(server):
    in_title = check(server, "/acme", ["Spring cloud days | Acme"])
    in_og = check(server, "/og", ["Acme Solutions"])  # a post page rendered by script

    assert in_title.outcome is Outcome.PASS
    assert in_title.evidence["markers"][0]["in"] == "title"
    assert in_og.outcome is Outcome.PASS
    assert in_og.evidence["markers"][0]["in"] == "description"


def test_no_markers_only_asks_that_the_page_is_live(server):
    finding = check(server, "/acme", [" ", ""])

    assert finding.outcome is Outcome.PASS and finding.score == 100
    assert finding.summary == f"Page is live (200) at {server.url('/acme')}"


@pytest.mark.parametrize("path, status", [("/missing", 404), ("/gone", 410)])
def test_a_page_that_is_not_there_fails(server, path, status):
    finding = check(server, path)

    assert finding.outcome is Outcome.FAIL and finding.score == 0 and not finding.transient
    assert finding.summary == f"Page returned {status} on 2026-03-02 14:05 UTC"


def test_a_server_error_is_transient_then_fails_on_the_last_attempt(server):
    first = check(server, "/teapot-500")
    last = check(server, "/teapot-500", final_attempt=True)

    assert first.outcome is Outcome.INCONCLUSIVE and first.transient
    assert first.summary == "Page returned 500 (server error) on 2026-03-02 14:05 UTC"
    assert last.outcome is Outcome.FAIL and not last.transient


def test_a_page_that_recovers_passes_on_the_retry():
    flaky = [Reply(500, b"down"), page_server.ACME_PAGE]
    with PageServer({"/flaky": flaky}) as running:
        first = check(running, "/flaky")
        retry = check(running, "/flaky")

    assert first.outcome is Outcome.INCONCLUSIVE and first.transient
    assert retry.outcome is Outcome.PASS and not retry.transient


def test_rate_limiting_stays_inconclusive(server):
    finding = check(server, "/busy", final_attempt=True)

    assert finding.outcome is Outcome.INCONCLUSIVE
    assert finding.summary == "Page returned 429 (too many requests) on 2026-03-02 14:05 UTC"


def test_the_metadata_address_is_refused():
    finding = check_page(METADATA_URL, MARKERS, LOCAL, now=NOW)

    assert finding.outcome is Outcome.FAIL and finding.score == 0 and not finding.transient
    assert finding.summary == (
        f"Refused to fetch {METADATA_URL}: 169.254.169.254 is a link-local address (cloud metadata)"
    )


def test_a_redirect_into_the_private_network_is_refused(server):
    finding = check(server, "/to-metadata")

    assert finding.outcome is Outcome.FAIL
    assert finding.summary.startswith(
        f"Refused to fetch {METADATA_URL} (redirected from {server.url('/to-metadata')}): "
    )
    assert finding.evidence["redirects"] == [METADATA_URL]


def test_a_local_address_is_refused_in_production(server):
    finding = check(server, "/acme", policy=FetchPolicy())

    assert finding.outcome is Outcome.FAIL
    assert finding.summary.endswith(": 127.0.0.1 is a loopback address")


def test_a_redirect_loop_fails(server):
    finding = check(server, "/loop/a")

    assert finding.outcome is Outcome.FAIL
    assert finding.summary.startswith("Page could not be fetched on 2026-03-02 14:05 UTC: ")
    assert "redirect loop" in finding.summary


def test_a_page_that_never_finishes_is_inconclusive_and_retried(server):
    policy = FetchPolicy(allow_hosts=LOCAL.allow_hosts, deadline=1.0)
    finding = check(server, "/drip", policy=policy)

    assert finding.outcome is Outcome.INCONCLUSIVE and finding.transient
    assert finding.summary.startswith("Page did not finish within 1 s (stopped after ")


def test_the_deadline_sentence_gives_the_size_read():
    def stalled(url: str, policy: FetchPolicy, *, now=None) -> Page:
        size = 2 * 1024 * 1024
        return Page(
            url, url, NOW, 200, bytes_read=size, error="timed out after 15 s", transient=True
        )

    finding = check_page("https://example.com/p", ["x"], FetchPolicy(), fetcher=stalled)

    assert finding.summary == "Page did not finish within 15 s (stopped after 2.0 MB)"
    assert finding.transient


def test_an_unreachable_server_is_inconclusive_and_retried():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        finding = check_page(url, MARKERS, LOCAL, now=NOW)

    assert finding.outcome is Outcome.INCONCLUSIVE and finding.transient
    assert finding.summary == (
        "Page could not be reached on 2026-03-02 14:05 UTC: connection refused by 127.0.0.1"
    )


def test_a_huge_page_with_the_markers_early_passes(server):
    finding = check(server, "/endless", ["more more more"])

    assert finding.outcome is Outcome.PASS and finding.evidence["truncated"] is True


def test_a_huge_page_without_the_markers_needs_a_person(server):
    finding = check(server, "/endless", ["Acme Solutions"])

    assert finding.outcome is Outcome.INCONCLUSIVE and not finding.transient
    assert finding.summary == (
        "Page is live (200) but does not mention: Acme Solutions (first 2.0 MB read)"
    )


def test_a_pdf_cannot_be_searched_here(server):
    finding = check(server, "/pdf")

    assert finding.outcome is Outcome.INCONCLUSIVE
    assert finding.summary == (
        "Page is live (200) but has no text to search (application/pdf); "
        "cannot find: Acme Solutions, Q3-CLOUD"
    )


def test_plain_text_and_other_encodings_are_searched(server):
    assert check(server, "/plain").outcome is Outcome.PASS
    assert check(server, "/latin1", ["cafe muller strasse"]).outcome is Outcome.PASS
    assert check(server, "/meta-charset", ["grüsse"]).outcome is Outcome.PASS


def test_social_posts_are_pages_like_any_other():
    post = html(
        "<article><p>Proud to launch our cloud bundle with Acme Solutions!</p>"
        "<p>#Q3CLOUD #partners</p></article>",
        title="Partner Co on Social: launch",
    )
    with PageServer({"/posts/123": post}) as running:
        finding = check(running, "/posts/123", ["Acme Solutions", "Q3 CLOUD"])

    assert finding.outcome is Outcome.PASS


def test_find_marker_on_its_own():
    assert find_marker("Acme", "ACME inc.").score == 100
    assert not find_marker("Acme", "").found
    near = find_marker("Acme Solutions", "we thank acme solution ltd")
    assert near.found and near.how == "close" and near.where == "we thank acme solution ltd"
    assert not find_marker("Q3", "Q30 results").found  # whole words only


def test_the_url_bench_reports_checks_per_second():
    lines = measure(count=10, threads=2)

    assert lines[0].startswith("url checks: 10 page checks")
    assert "(10/10 passed)" in lines[1] and "(10/10 passed)" in lines[2]
    assert "URLs/s" in lines[1]
    assert lines[-1].startswith("  target: 100 checks under 5 s one at a time: ")
