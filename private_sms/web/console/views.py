"""The console's pages: sign in and out, the chats, a chat's transcript, and the phone simulator.

Pages are rendered on the server (the lists and the transcript need no script; console.js only
refreshes a transcript while it is open). Every form posts the session's CSRF token; every
answer forbids framing and any script, style or form target but the console's own.
"""

from datetime import datetime, timedelta

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)

from private_sms.chats import A_TO_B, Chat
from private_sms.errors import InvalidRequest, SmsProxyError
from private_sms.web.chat_api import chat_query, cursor, page_size
from private_sms.web.console import session
from private_sms.web.console.simulator import (
    DELIVERY_RECEIPT,
    INBOUND_SMS,
    MAX_TEXT,
    deliver,
    delivery_receipts,
    inbound_webhooks,
)
from private_sms.web.current import proxy, settings

console = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# The console's own files only: no inline script or style, no other host, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
OPEN = {"console.sign_in", "console.static"}
TRANSCRIPT_PAGE = 100
# A text the dry run sent as a chat began (its intro) may be stamped a moment before the chat.
INTRO_SLACK = timedelta(seconds=1)


@console.before_request
def require_session():
    """Send a browser without a console session to the sign-in page; refuse a form without
    the session's CSRF token."""
    g.csrf = session.session_csrf(settings().admin_api_token)
    if request.endpoint in OPEN:
        return None
    if g.csrf is None:
        if request.method == "GET":
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")), 303)
        # A form posted after the session ended: the sign-in form, ready to use.
        return sign_in_page(401, "Sign in first: your session ended.", url_for("console.chats"))
    if request.method == "POST" and not session.csrf_matches(g.csrf):
        return page(
            "error.html",
            403,
            error="The form did not carry this session's CSRF token: reload the page, try again.",
        )
    return None


@console.after_request
def protect(response):
    """Forbid framing and other hosts' content; keep pages with numbers out of caches."""
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@console.errorhandler(SmsProxyError)
def error_page(error: SmsProxyError):
    """Answer the service's errors as a page, with the API's status and sentence."""
    return page("error.html", error.status, error=error.message), error.headers


@console.app_template_filter("when")
def when(moment: datetime | None) -> str:
    """Show a moment in UTC, to the second."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


@console.app_template_filter("phone")
def phone(number: str) -> str:
    """Show a number in E.164, as a person writes it."""
    return f"+{number}"


def page(template: str, status: int = 200, **context):
    """Render a console page with what every page shows."""
    context.setdefault("error", None)
    html = render_template(
        f"console/{template}",
        signed_in=g.get("csrf") is not None,
        csrf=g.get("csrf"),
        dry_run=settings().dry_run,
        **context,
    )
    return current_app.make_response((html, status))


@console.get("/")
def index():
    """Open the list of chats."""
    return redirect(url_for("console.chats"), 303)


@console.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with the admin token."""
    target = safe_next(request.values.get("next", ""))
    if request.method == "GET" and g.csrf is not None:
        return redirect(target, 303)
    status, error = 200, None
    if request.method == "POST":
        if not session.csrf_matches(request.cookies.get(session.SIGN_IN_COOKIE)):
            status, error = 403, "The sign-in form expired: try again."
        elif not session.token_matches(request.form.get("token", ""), admin_token()):
            status, error = 401, "That is not the service's admin token (ADMIN_API_TOKEN)."
        else:
            response = redirect(target, 303)
            session.sign_in(response, admin_token())
            return response
    return sign_in_page(status, error, target)


def sign_in_page(status: int, error: str | None, target: str):
    """Render the sign-in form, with its CSRF token in the form and in the browser's cookie."""
    form_token = session.sign_in_csrf()
    g.csrf = None
    response = page("sign_in.html", status, error=error, form_token=form_token, next=target)
    session.keep_sign_in_csrf(response, form_token)
    return response


@console.post("/sign-out")
def sign_out():
    """End the console session."""
    response = redirect(url_for("console.sign_in"), 303)
    session.sign_out(response)
    return response


@console.get("/chats")
def chats():
    """List chats, newest first, with the API's filters and paging; start a chat."""
    return chats_page()


@console.post("/chats")
def start_chat():
    """Start a chat between two numbers (both get the intro text)."""
    given = {name: request.form.get(name, "").strip() for name in ("userANumber", "userBNumber")}
    try:
        chat = proxy().create_chat(given["userANumber"], given["userBNumber"])
    except SmsProxyError as error:
        return chats_page(status=error.status, error=error.message, given=given)
    return redirect(url_for("console.chat", chat_id=chat.id), 303)


def chats_page(status: int = 200, error: str | None = None, given: dict | None = None):
    filters = {
        name: request.args.get(name, default)
        for name, default in (("status", "active"), ("participant", ""), ("number", ""))
    }
    try:
        limit = page_size(request.args.get("limit", ""))
        query = chat_query(
            filters["status"],
            filters["participant"],
            filters["number"],
            limit,
            request.args.get("cursor", ""),
        )
    except InvalidRequest as wrong:
        status, error, limit, query = 400, wrong.message, 0, None
    found = proxy().list_chats(query) if query else []
    depth, age = proxy().queue_state()
    older = None
    if len(found) > limit:
        older = url_for("console.chats", **filters, limit=limit, cursor=found[limit - 1].seq)
    return page(
        "chats.html",
        status,
        error=error,
        chats=found[:limit],
        filters=filters,
        older=older,
        given=given or {},
        queue={"depth": depth, "age": age},
        send_rate=settings().send_rate,
        sending=proxy().sender.mode,
        store=proxy().store.kind,
        numbers=proxy().virtual_numbers,
    )


@console.get("/chats/<chat_id>")
def chat(chat_id: str):
    """Show a chat and its transcript; in a dry run, its two simulated phones."""
    return chat_page(chat_id)


def chat_page(chat_id: str, status: int = 200, error: str | None = None, typed: dict | None = None):
    found = proxy().get_chat(chat_id)
    after = cursor(request.args.get("cursor", ""))
    records = proxy().list_messages(chat_id, limit=TRANSCRIPT_PAGE + 1, after=after)
    later = None
    if len(records) > TRANSCRIPT_PAGE:
        later = url_for("console.chat", chat_id=chat_id, cursor=records[TRANSCRIPT_PAGE - 1].seq)
    return page(
        "chat.html",
        status,
        error=error,
        chat=found,
        records=records[:TRANSCRIPT_PAGE],
        later=later,
        from_start=after is None,
        a_to_b=A_TO_B,
        bodies_kept=settings().store_message_bodies,
        phones=phones_of(found),
        typed=typed or {},
        max_text=MAX_TEXT,
        signed=bool(settings().signature_secret),
    )


def phones_of(found: Chat) -> list[dict] | None:
    """Return the chat's two simulated phones with the texts the dry run sent each, or None
    when the service sends for real."""
    sent_to = getattr(proxy().sender, "sent_to", None)
    if sent_to is None:
        return None
    since = found.created_at - INTRO_SLACK
    return [
        {
            "side": side,
            "label": label,
            "number": number,
            "inbox": [
                text for text in sent_to(number) if text.sender == found.number and text.at >= since
            ],
        }
        for side, label, number in (("a", "A", found.user_a), ("b", "B", found.user_b))
    ]


@console.post("/chats/<chat_id>/end")
def end_chat(chat_id: str):
    """End a chat, texting both people that it ended when asked to."""
    proxy().end_chat(chat_id, notify=request.form.get("notify") == "yes")
    return redirect(url_for("console.chat", chat_id=chat_id), 303)


@console.post("/chats/<chat_id>/phones/<side>")
def text_from_phone(chat_id: str, side: str):
    """Text the chat's virtual number from A's or B's simulated phone (dry run only): the text
    goes to the inbound-SMS webhook as Vonage would deliver it."""
    if not settings().dry_run or side not in ("a", "b"):
        return no_simulator()
    found = proxy().get_chat(chat_id)
    text = request.form.get("text", "")
    typed = {side: text}
    if not found.active:
        return chat_page(chat_id, 409, "This chat ended: its number no longer relays.", typed)
    if not text.strip() or len(text) > MAX_TEXT:
        return chat_page(chat_id, 400, f"Type a text of 1 to {MAX_TEXT} characters to send.", typed)
    sender = found.user_a if side == "a" else found.user_b
    webhooks = inbound_webhooks(sender, found.number, text, **as_vonage())
    return hand_over(chat_id, side, INBOUND_SMS, webhooks, typed)


@console.post("/chats/<chat_id>/phones/<side>/receipts")
def receipts_from_phone(chat_id: str, side: str):
    """Say that the texts A's or B's simulated phone got in this chat were delivered (dry run
    only): a delivery receipt per SMS part, through the delivery-receipt webhook."""
    if not settings().dry_run or side not in ("a", "b"):
        return no_simulator()
    found = proxy().get_chat(chat_id)
    phone = next(phone for phone in phones_of(found) if phone["side"] == side)
    parts = [message_id for text in phone["inbox"] for message_id in text.message_ids]
    webhooks = delivery_receipts(phone["number"], found.number, parts, **as_vonage())
    return hand_over(chat_id, side, DELIVERY_RECEIPT, webhooks)


def as_vonage() -> dict:
    """How Vonage would sign and mark a webhook to this service."""
    config = settings()
    return {
        "api_key": config.vonage_api_key,
        "secret": config.signature_secret,
        "method": config.signature_method,
    }


def hand_over(chat_id: str, side: str, path: str, webhooks, typed: dict | None = None):
    """Hand a simulated phone's webhooks to the service's route `path`, one by one; then show
    the phone again, or what the route answered to one it did not take."""
    for fields in webhooks:
        status, message = deliver(current_app._get_current_object(), path, fields)
        if status != 204:
            return chat_page(chat_id, status, f"{path} answered {status}: {message}", typed)
    return redirect(url_for("console.chat", chat_id=chat_id, _anchor=f"phone-{side}"), 303)


def no_simulator():
    return page(
        "error.html",
        404,
        error="The phone simulator is there in a dry run only (no Vonage credentials).",
    )


def admin_token() -> str:
    return settings().admin_api_token


def safe_next(target: str) -> str:
    """Return `target` if it is a console page of this site, else the list of chats."""
    if target.startswith("/console/"):
        return target
    return url_for("console.chats")
