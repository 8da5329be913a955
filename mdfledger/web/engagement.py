"""Engagement pages: Integrations (admins set up where events go; finance and auditors read),
the dead-letter list finance replays, and the partner's Messages.

Thin: a form parses, one service call works, the view commits. A webhook's signing secret is
shown once, on the page that answers its creation (or a new secret's), never again: it is not
put in the session cookie or a redirect.

Endpoints: web.integrations, web.new_destination, web.create_destination, web.destination,
web.save_destination, web.destination_active, web.destination_test, web.destination_secret,
web.dead_letters, web.replay_dead_letters, web.messages.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import BooleanField, SelectField, StringField

from mdfledger import engagement, programs
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.auth.scope import MANAGERS, STAFF
from mdfledger.db import get_read_session, get_session
from mdfledger.engagement import DestinationKind, EventType
from mdfledger.engagement.rules import ALL_TYPES, type_list
from mdfledger.errors import NotFound, ValidationError
from mdfledger.web import MultiCheckboxField, bp, call_service, choices, show_error, url_if

KIND_LABELS = {
    DestinationKind.WEBHOOK: "Webhook (signed HTTPS POST)",
    DestinationKind.SNS: "Amazon SNS topic",
    DestinationKind.EVENTBRIDGE: "Amazon EventBridge bus",
    DestinationKind.EMAIL: "E-mail",
}
TYPE_CHOICES = [(ALL_TYPES, "Every event type"), *((t.value, t.value) for t in EventType)]
STATE_LABELS = {"pending": "Pending", "delivered": "Delivered", "dead": "Dead letter"}


class DestinationForm(FlaskForm):
    name = StringField("Name")
    event_types = MultiCheckboxField("Event types", choices=choices(TYPE_CHOICES))
    url = StringField("Webhook URL", render_kw={"inputmode": "url", "autocomplete": "off"})
    topic_arn = StringField("SNS topic ARN", render_kw={"autocomplete": "off"})
    event_bus = StringField("EventBridge bus (name or ARN)", render_kw={"autocomplete": "off"})
    region = StringField("AWS region (optional)", render_kw={"autocomplete": "off"})
    email_to = StringField("E-mail addresses", render_kw={"autocomplete": "off"})


class NewDestinationForm(DestinationForm):
    kind = SelectField(
        "Kind", choices=choices((k.value, label) for k, label in KIND_LABELS.items())
    )
    partner = StringField("Partner code (empty: every partner)", render_kw={"autocomplete": "off"})


class ActiveForm(FlaskForm):
    active = BooleanField("Active")


def _settings(form: DestinationForm) -> dict[str, Any]:
    typed = form.email_to.data or ""
    return {
        "name": form.name.data or "",
        "event_types": form.event_types.data or [],
        "url": form.url.data or None,
        "topic_arn": form.topic_arn.data or None,
        "event_bus": form.event_bus.data or None,
        "region": form.region.data or None,
        "email_to": typed if typed.strip() else None,
    }


# --- Integrations: the list and a new destination ------------------------------------------------


@bp.get("/integrations")
@require_roles(*STAFF)
def integrations() -> str:
    session = get_read_session()
    found = engagement.destinations(session, request_actor())
    partners = _partners(session, {d.partner_id for d in found if d.partner_id is not None})
    return render_template(
        "engagement/integrations.html",
        destinations=found,
        partners=partners,
        kind_labels=KIND_LABELS,
        type_list=type_list,
        mask=engagement.mask_secret,
        is_admin=current_user.role == Role.ADMIN,
    )


def _partners(session: Session, ids: set[int]) -> dict[int, programs.Partner]:
    """The partners named on a page, in one query."""
    if not ids:
        return {}
    found = session.scalars(select(programs.Partner).where(programs.Partner.id.in_(ids)))
    return {p.id: p for p in found}


@bp.get("/integrations/new")
@require_roles(Role.ADMIN)
def new_destination() -> str:
    form = NewDestinationForm(formdata=None, data={"event_types": [ALL_TYPES]})
    return render_template("engagement/new.html", form=form, kind_labels=KIND_LABELS)


@bp.post("/integrations/new")
@require_roles(Role.ADMIN)
def create_destination() -> Any:
    form = NewDestinationForm()
    if form.validate():

        def create(session: Session, actor: Actor) -> engagement.NewDestination:
            code = (form.partner.data or "").strip()
            partner_id = None
            if code:
                try:
                    partner_id = programs.partner_by_code(session, actor, code).id
                except NotFound:
                    raise ValidationError(
                        f"no partner has the code {code!r}", field="partner"
                    ) from None
            return engagement.create_destination(
                session, actor, kind=form.kind.data, partner_id=partner_id, **_settings(form)
            )

        made = call_service(form, create, aliases={"partner_id": "partner"})
        if made is not None:
            if made.secret is None:
                flash(f"Destination {made.destination.name!r} added", "success")
                return redirect(url_for("web.destination", destination_id=made.destination.id))
            return _destination_page(
                made.destination.id, secret=made.secret, status=201, session=get_session()
            )
    return render_template("engagement/new.html", form=form, kind_labels=KIND_LABELS), 422


# --- one destination -----------------------------------------------------------------------------


def _edit_form(destination: engagement.Destination) -> DestinationForm:
    return DestinationForm(
        formdata=None,
        data={
            "name": destination.name,
            "event_types": type_list(destination.event_types) or [ALL_TYPES],
            "url": destination.url or "",
            "topic_arn": destination.topic_arn or "",
            "event_bus": destination.event_bus or "",
            "region": destination.region or "",
            "email_to": ", ".join(destination.email_to or []),
        },
    )


def _destination_page(
    destination_id: int,
    *,
    form: DestinationForm | None = None,
    secret: str | None = None,
    status: int = 200,
    session: Session | None = None,
) -> tuple[str, int]:
    # After a write in this request, its own (committed) session: the read session's snapshot
    # may be older than the write.
    session = session or get_read_session()
    actor = request_actor()
    destination = engagement.get_destination(session, actor, destination_id)
    partner = (
        None
        if destination.partner_id is None
        else session.get(programs.Partner, destination.partner_id)
    )
    recipients: list[str] = []
    if destination.kind == DestinationKind.EMAIL and not destination.email_to and partner:
        recipients = engagement.service.partner_addresses(session, partner.id)
    page = render_template(
        "engagement/destination.html",
        destination=destination,
        partner=partner,
        recipients=recipients,
        form=form or _edit_form(destination),
        secret=secret,
        mask=engagement.mask_secret,
        deliveries=engagement.deliveries(session, actor, destination_id=destination.id),
        kind_labels=KIND_LABELS,
        state_labels=STATE_LABELS,
        type_list=type_list,
        is_admin=current_user.role == Role.ADMIN,
        can_replay=current_user.role in MANAGERS,
    )
    return page, status


@bp.get("/integrations/<int:destination_id>")
@require_roles(*STAFF)
def destination(destination_id: int) -> tuple[str, int]:
    return _destination_page(destination_id)


@bp.post("/integrations/<int:destination_id>")
@require_roles(Role.ADMIN)
def save_destination(destination_id: int) -> Any:
    form = DestinationForm()
    if form.validate():

        def save(session: Session, actor: Actor) -> object:
            return engagement.update_destination(session, actor, destination_id, **_settings(form))

        if call_service(form, save) is not None:
            flash("Destination saved", "success")
            return redirect(url_for("web.destination", destination_id=destination_id))
    return _destination_page(destination_id, form=form, status=422)


@bp.post("/integrations/<int:destination_id>/active")
@require_roles(Role.ADMIN)
def destination_active(destination_id: int) -> Any:
    form = ActiveForm()
    if not form.validate():
        abort(400)
    active = bool(form.active.data)

    def switch(session: Session, actor: Actor) -> object:
        return engagement.update_destination(session, actor, destination_id, active=active)

    if call_service(form, switch) is None:  # pragma: no cover - nothing on it can be refused
        abort(400)
    flash("Destination enabled" if active else "Destination disabled: events wait", "success")
    return redirect(url_for("web.destination", destination_id=destination_id))


@bp.post("/integrations/<int:destination_id>/test")
@require_roles(Role.ADMIN)
def destination_test(destination_id: int) -> Any:
    form = FlaskForm()
    if not form.validate():
        abort(400)
    senders = engagement.app_senders()

    def probe(session: Session, actor: Actor) -> engagement.ProbeResult:
        return engagement.send_probe(session, actor, senders, destination_id)

    result = call_service(form, probe)
    if result is None:  # pragma: no cover
        abort(400)
    if result.ok:
        flash("Test message delivered", "success")
    else:
        flash(f"Test message not delivered: {result.detail}", "error")
    return redirect(url_for("web.destination", destination_id=destination_id))


@bp.post("/integrations/<int:destination_id>/secret")
@require_roles(Role.ADMIN)
def destination_secret(destination_id: int) -> Any:
    form = FlaskForm()
    if not form.validate():
        abort(400)
    made = call_service(
        form, lambda session, actor: engagement.rotate_secret(session, actor, destination_id)
    )
    if made is None:  # not a webhook: the reason is on the form, which this page does not show
        flash(" ".join(form.form_errors), "error")
        return redirect(url_for("web.destination", destination_id=destination_id))
    return _destination_page(destination_id, secret=made.secret, session=get_session())


# --- dead letters --------------------------------------------------------------------------------


class ReplayForm(FlaskForm):
    pass


@bp.get("/dead-letters")
@require_roles(*STAFF)
def dead_letters() -> str:
    return _dead_letters_page(ReplayForm(formdata=None))


def _dead_letters_page(form: ReplayForm, status: int = 200) -> Any:
    session = get_read_session()
    letters = engagement.dead_letters(session, request_actor(), limit=200)
    page = render_template(
        "engagement/dead_letters.html",
        letters=letters,
        form=form,
        kind_labels=KIND_LABELS,
        can_replay=current_user.role in MANAGERS,
    )
    return page, status


@bp.post("/dead-letters/replay")
@require_roles(*MANAGERS)
def replay_dead_letters() -> Any:
    form = ReplayForm()
    if not form.validate():
        form.form_errors.append("the form expired; reload the page and submit it again")
        return _dead_letters_page(form, 400)
    typed = request.form.getlist("delivery_id")
    ids: list[object] = [int(t) if t.isascii() and t.isdigit() else t for t in typed]
    if not ids:
        show_error(form, ValidationError("choose the dead letters to replay"))
        return _dead_letters_page(form, 422)
    replayed = call_service(form, lambda session, actor: engagement.replay(session, actor, ids))
    if replayed is None:
        return _dead_letters_page(form, 422)
    count = len(replayed)
    flash(f"{count} dead letter{'s' if count != 1 else ''} sent again, oldest first", "success")
    return redirect(url_for("web.dead_letters"))


# --- the partner's messages ----------------------------------------------------------------------


@bp.get("/messages")
@require_roles(*STAFF, Role.PARTNER)
def messages() -> str:
    session = get_read_session()
    actor = request_actor()
    before = request.args.get("before", type=int)
    partner_id = request.args.get("partner", type=int)
    if current_user.role == Role.PARTNER:
        partner_id = None  # their own, whatever the link says
    events = engagement.events_for(
        session, actor, partner_id, before_id=before, limit=engagement.service.PAGE_SIZE + 1
    )
    more = len(events) > engagement.service.PAGE_SIZE
    events = events[: engagement.service.PAGE_SIZE]
    partners = _partners(session, {e.partner_id for e in events})
    return render_template(
        "engagement/messages.html",
        events=events,
        partners=partners,
        partner_id=partner_id,
        next_before=events[-1].id if more and events else None,
        is_partner=current_user.role == Role.PARTNER,
        links={e.id: _link(e) for e in events},
    )


def _link(event: engagement.Event) -> tuple[str, str] | None:
    """Where the message's next step is done: (label, url), or None."""
    data = event.data if isinstance(event.data, dict) else {}
    claim_id, request_id = data.get("claim_id"), data.get("request_id")
    if event.type.startswith("claim.") and isinstance(claim_id, int):
        label, url = "Open the claim", url_if("web.claim", claim_id=claim_id)
    elif event.type == "reservation.deadline_near" and isinstance(request_id, int):
        label, url = "Open the pre-approval", url_if("web.request", request_id=request_id)
    elif event.type.startswith(("fund.", "funds.", "utilisation.", "partner.")):
        label, url = "See your funds", url_if("web.funds")
    else:
        return None
    return (label, url) if url else None
