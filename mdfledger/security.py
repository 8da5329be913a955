"""Security headers on every response, and the cookies' flags.

The pages load nothing from elsewhere and carry no inline script or style (scripts and styles
are files under web/static), so the Content-Security-Policy allows this origin only. No page
or API answer is stored by a browser or a proxy: each is for a signed-in user or a token, or
carries a CSRF token (the sign-in page); only static files may be cached. HSTS is sent in
production only: a development server on http://localhost must stay usable.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from mdfledger.config import Settings
from mdfledger.csvfile import human_size

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",  # scripts, styles, images, fetches: this origin only
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Links out (a partner's landing page) do not learn our paths, which name claims.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# With proof documents on S3 the claim page frames and shows them from presigned links there
# (its document route redirects), so frames and images may also come from the bucket's origin.
AWS_S3_ORIGINS = "https://*.amazonaws.com"
HSTS = "max-age=31536000; includeSubDomains"  # a year: production is served over https only
NO_STORE = "no-store"


def init_app(app: Flask, settings: Settings) -> None:
    """Cookie flags, the after_request hook that adds the headers, and the client's address and
    scheme from the proxies in front (MDFLEDGER_PROXY_HOPS) so limits count per client."""
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops
        )
    secure = settings.is_production  # over https; a development server has plain http
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        # Flask-Login's remember-me cookie (not offered today; flagged in case it is).
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
    )
    hsts = HSTS if settings.is_production else None
    policy = content_security_policy(settings)

    app.before_request(refuse_nul)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", hsts)
        if not (request.endpoint or "").endswith("static"):
            response.headers["Cache-Control"] = NO_STORE
            response.headers.pop("Expires", None)
        return response


def content_security_policy(settings: Settings) -> str:
    if settings.proof_store != "s3":
        return CONTENT_SECURITY_POLICY
    if settings.s3_endpoint_url:
        parts = urlsplit(settings.s3_endpoint_url)
        origins = f"{parts.scheme}://{parts.netloc} {parts.scheme}://*.{parts.netloc}"
    else:
        origins = AWS_S3_ORIGINS
    return "; ".join(
        (CONTENT_SECURITY_POLICY, f"img-src 'self' {origins}", f"frame-src 'self' {origins}")
    )


NUL_MESSAGE = "A field held a NUL character, which nobody types: nothing was done."


def refuse_nul() -> Response | None:
    """Pages: no NUL character in the address's arguments or a form's fields. PostgreSQL can
    neither store nor compare one, so it would reach the database as an error (a 500). The API
    refuses them in its own parser (api/blueprint.py), naming the field."""
    if request.path == "/api" or request.path.startswith("/api/"):
        return None
    fields = [*request.args.items(multi=True)]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields += request.form.items(multi=True)
    if any("\x00" in name or "\x00" in value for name, value in fields):
        from mdfledger.web.errors import error_page

        return error_page(400, NUL_MESSAGE)
    return None


def too_large_message() -> str:
    """What a 413 says: the app's limits (MAX_CONTENT_LENGTH, MDFLEDGER_UPLOAD_MAX_BYTES)."""
    settings: Settings = current_app.config["MDFLEDGER"]
    request_max = current_app.config["MAX_CONTENT_LENGTH"]
    return (
        f"a file may be at most {human_size(settings.upload_max_bytes)}, and one request at"
        f" most {human_size(request_max)}"
    )
