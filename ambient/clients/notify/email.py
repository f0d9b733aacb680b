"""Email over SMTP (aiosmtplib): HTML with a plain-text alternative, attachments, TLS modes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import ssl
from dataclasses import KW_ONLY, dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from html import escape
from typing import Any

import aiosmtplib
from email_validator import EmailNotValidError, validate_email

from ambient.clients.notify.base import Posts
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
    ssl_error_in,
)
from ambient.domain.deliver_later import smtp_asked_delay
from ambient.domain.notify import Message, sender_mailbox
from ambient.render import markdown_html, markdown_plain


@dataclass(repr=False)  # the SMTP password stays out of logs and tracebacks
class EmailChannel:
    name = "email"

    host: str | None
    port: int
    sender: str
    _: KW_ONLY
    username: str | None = None
    password: str | None = None
    tls: str = "starttls"
    helo: str | None = None  # the name said in EHLO (AMBIENT_SMTP_HELO); none: the host's
    timeout: float = 30.0
    # The connection and the server's greeting (a TLS handshake first with ``ssl``): a server
    # waiting for a TLS handshake (STARTTLS asked on port 465) greets never, and a wait as
    # long as the send's deadline left no time to say so.
    greeting_wait: float = 10.0
    tls_context: ssl.SSLContext | None = None
    # ``sender`` read as its display name and address (its domain in ASCII, as the recipient's):
    # the From header is that one mailbox, the envelope's sender that address.
    _from: Address = field(init=False)

    def __post_init__(self) -> None:
        try:
            name, address = sender_mailbox(self.sender)
        except ValueError as exc:
            raise ValueError(f"AMBIENT_SMTP_FROM is not a sender: {exc}") from None
        local, _, domain = ascii_domain(address).rpartition("@")
        self._from = Address(display_name=name, username=local, domain=domain)

    def build(self, message: Message, to: str, idempotency_key: str) -> EmailMessage:
        mail = EmailMessage()
        # One header line: a line break in the title would be refused (or start a header).
        mail["Subject"] = " ".join(message.title.splitlines())
        mail["From"] = self._from  # its name quoted or encoded as it needs (commas, colons)
        mail["To"] = to
        mail["Date"] = formatdate(localtime=False)
        # Stable per delivery: a resend after a crash carries the same id (clients thread it).
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}@{self._from.domain}>"  # the sender's domain, in ASCII
        after = f"\n\n{message.link_to_add}" if message.link_to_add else ""
        mail.set_content(markdown_plain(message.body) + after)
        html = message.html or markdown_html(message.body)
        if message.link_to_add and not message.html:
            link = escape(message.link_to_add)  # a watched page's URL may carry quotes and brackets
            html += f'<p><a href="{link}">{link}</a></p>'
        mail.add_alternative(html, subtype="html")
        for attachment in message.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mail.add_attachment(
                base64.b64decode(attachment.content_b64),
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return mail

    async def send(
        self,
        user: str,
        message: Message,
        target: str,
        *,
        idempotency_key: str,
        posts: Posts | None = None,
        **unused: object,
    ) -> str | None:
        if not self.host:
            raise PermanentNotifyError("email is not configured: set AMBIENT_SMTP_HOST")
        # Off the event loop: rendering a long body's markdown takes a while.
        mail = await asyncio.to_thread(self.build, message, ascii_domain(target), idempotency_key)
        client = _Client(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.tls == "ssl",
            start_tls=self.tls == "starttls",
            timeout=self.timeout,
            tls_context=self.tls_context,
            local_hostname=self.helo,
        )
        client.posts = posts
        client.greeting_wait = min(self.greeting_wait, self.timeout)
        try:
            async with client:
                await client.send_message(mail, sender=self._from.addr_spec)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if any(HELO_REFUSED in r.message for r in exc.recipients):
                # Postfix's reject_non_fqdn_helo_hostname answers at RCPT: no recipient's fault.
                raise PermanentNotifyError(
                    f"the SMTP server refused the name this worker greeted it with (EHLO "
                    f"{client.local_hostname}): set AMBIENT_SMTP_HELO to this host's fully "
                    f"qualified DNS name ({exc.recipients[0].code} {exc.recipients[0].message})"
                ) from exc
            said = "; ".join(
                f"recipient {r.recipient} refused{{}} ({r.code} {r.message})"
                for r in exc.recipients
            )
            # 4xx is "try again later" (greylisting, a full mailbox): only 5xx is final.
            if all(400 <= refused.code < 500 for refused in exc.recipients):
                asked = [smtp_asked_delay(refused.message) for refused in exc.recipients]
                stated = [delay for delay in asked if delay is not None]
                raise DeferredNotifyError(
                    said.format(" for now"), retry_after=max(stated, default=None)
                ) from exc
            raise PermanentNotifyError(said.format("") + self._relay_hint(exc)) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # 454 is "try again later" (RFC 4954, e.g. too many logins); 535 a wrong password.
            fix = (
                "check AMBIENT_SMTP_USERNAME and AMBIENT_SMTP_PASSWORD (many providers want an "
                "app password or authorization code, not the account's own)"
            )
            raise _refused(exc, "SMTP login", fix) from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            if too_big(exc):  # the sender is fine: no AMBIENT_SMTP_FROM makes it smaller
                limit = client.size_limit
                taken = f", which takes {limit} bytes at most" if limit else ""
                raise PermanentNotifyError(
                    f"the message is too big for this SMTP server{taken} ({exc.code} "
                    f"{exc.message}): send less (a shorter body, fewer attachments), or raise "
                    "the server's message size limit"
                ) from exc
            if 400 <= exc.code < 500:  # 452 storage full, 451 a local error: the server's
                said = f"the SMTP server cannot take mail now ({exc.code} {exc.message})"
                raise _later(said, exc) from exc
            raise _refused(exc, f"sender {exc.sender}", _fix(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:  # 421 busy, 451 at DATA (some greylist there): later
                raise _later(f"SMTP {exc.code}: {exc.message}", exc) from exc
            raise PermanentNotifyError(f"SMTP {exc.code}: {exc.message}") from exc
        except (OSError, TimeoutError) as exc:  # aiosmtplib's connection errors and timeouts too
            if (problem := tls_problem(exc)) is not None:
                raise PermanentNotifyError(problem) from exc
            if await self._tls_first(exc):
                raise PermanentNotifyError(
                    f"the SMTP server on port {self.port} speaks TLS from the first byte "
                    f"(implicit TLS) and sent no greeting to AMBIENT_SMTP_TLS={self.tls}: set "
                    "AMBIENT_SMTP_TLS=ssl for this port (465), or use STARTTLS on port 587 "
                    "(AMBIENT_SMTP_PORT=587, AMBIENT_SMTP_TLS=starttls)"
                ) from exc
            if client.data_begun:
                # Lost after the message was handed over, before the server said it took it
                # (RFC 5321 6.1): it may have been delivered, and another try would be a second
                # copy (one of six, every try, before).
                raise PermanentNotifyError(
                    f"the SMTP server stopped answering after the message was sent "
                    f"({type(exc).__name__}: {exc}): it may have been delivered; not sent again"
                ) from exc
            raise TransientNotifyError(f"{type(exc).__name__}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            # What the server does not offer (STARTTLS, AUTH, SMTPUTF8): AMBIENT_SMTP_* to fix.
            said = f"{type(exc).__name__}: {exc}"
            if "AUTH" in str(exc):  # its text also says "Try connecting via TLS (or STARTTLS)"
                said += (
                    ": this server takes no login here; unset AMBIENT_SMTP_USERNAME, or set "
                    "AMBIENT_SMTP_TLS (many offer AUTH only over TLS)"
                )
            elif "STARTTLS" in str(exc):
                said += f": no STARTTLS offered on port {self.port}; set AMBIENT_SMTP_TLS"
            raise PermanentNotifyError(said) from exc
        return str(mail["Message-ID"])

    def _relay_hint(self, refused: aiosmtplib.SMTPRecipientsRefused) -> str:
        """What to set when the server refused to relay (Postfix: "554 5.7.1 Relay access
        denied"): it relays for a login, or the provider's own submission server does."""
        if not any("relay" in r.message.lower() for r in refused.recipients):
            return ""
        login = (
            f"the login {self.username} may not send there"
            if self.username
            else "set AMBIENT_SMTP_USERNAME and AMBIENT_SMTP_PASSWORD (a login lets it relay)"
        )
        return (
            f": this server does not relay mail from {self._from.addr_spec} to other domains; "
            f"{login}, or send through your mail provider's submission server (port 587, "
            "AMBIENT_SMTP_TLS=starttls)"
        )

    async def _tls_first(self, exc: BaseException) -> bool:
        """Whether a greeting waited for in vain (STARTTLS or plain SMTP asked for) is a server
        waiting for a TLS handshake instead (port 465's implicit TLS): it answers one."""
        if self.tls == "ssl" or not isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
            return False
        asked = ssl.create_default_context()  # only whether it speaks TLS, not whom it is
        asked.check_hostname, asked.verify_mode = False, ssl.CERT_NONE
        try:
            async with asyncio.timeout(self.greeting_wait):
                _, writer = await asyncio.open_connection(self.host, self.port, ssl=asked)
        except (OSError, TimeoutError):  # no handshake answered: not TLS (or not reached)
            return False
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await writer.wait_closed()
        return True


# What Postfix answers a recipient when it refuses the client's EHLO name (its
# reject_non_fqdn_helo_hostname, reject_invalid_helo_hostname, reject_unknown_helo_hostname).
HELO_REFUSED = "Helo command rejected"


def ascii_domain(address: str) -> str:
    """``address`` with its domain in ASCII (IDNA: ``例子.中国`` as ``xn--fsqu00a.xn--fiqs8s``):
    written as the user gave it, it needs the server's SMTPUTF8, which many relays lack; only
    a local part beyond ASCII still does."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address  # checked where it was saved and before the send: the server says why
    return f"{checked.local_part}@{checked.ascii_domain}"


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, noting when the message itself was written (past the server's
    354 to DATA): a connection lost after that, or a send cut off by its deadline
    (``posts.handed``), may have delivered the message. After the server's 354, before the
    message, ``posts.handing`` records on the delivery's row that it goes now: a worker that
    dies before the server's answer is recorded leaves it said there."""

    data_begun = False
    accepted = False  # the server said it took the message (its answer to the DATA)
    posts: Posts | None = None
    # The message size the server said it takes (ESMTP SIZE, RFC 1870; 0 or none: no limit
    # said), kept past the close that forgets what the server offered.
    size_limit = 0
    greeting_wait: float | None = None  # the connection's and greeting's, not each reply's

    async def connect(self, *args: Any, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        # aiosmtplib's one ``timeout`` is every reply's (the one to DATA too, which a server's
        # spam scan may hold): only the greeting's is shorter.
        if self.greeting_wait is not None:
            kwargs.setdefault("timeout", self.greeting_wait)
        return await super().connect(*args, **kwargs)

    async def ehlo(self, *args: Any, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        answer = await super().ehlo(*args, **kwargs)
        said = self.esmtp_extensions.get("size", "").strip()
        self.size_limit = int(said) if said.isdigit() else 0
        return answer

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, asyncio.CancelledError) or self.accepted:
            # Cancelled (its activity's cancel heard): closed at once. aiosmtplib's QUIT
            # waited for a server that had not answered the message, up to ``timeout``. Taken
            # (250): the goodbye is no matter, and a server slow to say it had the send cut by
            # its deadline there, the mail it took recorded failed ("may have been delivered").
            self.close()
            return
        await super().__aexit__(exc_type, exc, tb)

    async def data(self, message: str | bytes, /, **options: Any) -> aiosmtplib.SMTPResponse:
        if (protocol := self.protocol) is None:
            return await super().data(message, **options)
        write, read, posts = protocol.write, protocol.read_response, self.posts

        async def reading(timeout: float | None = None) -> aiosmtplib.SMTPResponse:  # noqa: ASYNC109
            answer = await read(timeout=timeout)
            if posts is not None and not self.data_begun and answer.code == 354:
                # Recorded once the server said "go ahead", before a byte of the message:
                # recorded before the DATA, a worker that died while a server held its 354
                # (a policy check at DATA) left a mail never sent marked "may have been
                # delivered", never sent again.
                try:
                    await posts.handing()
                except BaseException:
                    self.close()  # mid-DATA: a QUIT would be read as the message
                    raise
            return answer

        def noting(data: bytes) -> None:
            # aiosmtplib writes "DATA", reads the 354, then writes the message: lost before
            # that, nothing was sent and another try makes no second copy.
            self.data_begun = self.data_begun or data != b"DATA\r\n"
            if self.data_begun and self.posts is not None:
                self.posts.handed = True
            write(data)

        protocol.write = noting  # type: ignore[method-assign]
        protocol.read_response = reading  # type: ignore[method-assign]
        try:
            answer = await super().data(message, **options)
        finally:
            protocol.write = write  # type: ignore[method-assign]
            protocol.read_response = read  # type: ignore[method-assign]
        self.accepted = True  # a refusal raised above
        return answer


def _refused(exc: aiosmtplib.SMTPResponseException, what: str, fix: str) -> Exception:
    """``what`` refused: for now when the server said 4xx, else for good, saying what to set."""
    said = f"{exc.code} {exc.message}"
    if 400 <= exc.code < 500:
        return _later(f"{what} refused for now ({said})", exc)
    return PermanentNotifyError(f"{what} refused ({said}): {fix}")


def _later(said: str, exc: aiosmtplib.SMTPResponseException) -> DeferredNotifyError:
    """A 4xx reply: ``said``, tried again when the reply asks (else on the usual backoff)."""
    return DeferredNotifyError(said, retry_after=smtp_asked_delay(exc.message))


def too_big(refused: aiosmtplib.SMTPSenderRefused) -> bool:
    """Whether MAIL FROM was refused for the message's size (its SIZE= over the server's limit,
    RFC 1870: 552, enhanced status 5.3.4 "message too big for system"), not for the sender."""
    return refused.code == 552 or "5.3.4" in refused.message


def _fix(refused: aiosmtplib.SMTPSenderRefused) -> str:
    """What to set for a sender refused for good: a server that wants STARTTLS or a login first
    answers MAIL FROM with 530 (RFC 3207, RFC 4954), not a sender it refuses."""
    text = refused.message.lower()
    if "starttls" in text or "tls" in text.split():
        return "this server wants TLS first: set AMBIENT_SMTP_TLS=starttls (or ssl)"
    if refused.code == 530 or re.search(r"\bauth(?:entication)?\b", text):  # not "authorization"
        return (
            "this server wants a login first: set AMBIENT_SMTP_USERNAME and AMBIENT_SMTP_PASSWORD"
        )
    return "set AMBIENT_SMTP_FROM to an address this server lets AMBIENT_SMTP_USERNAME send as"


# OpenSSL's words for "the other end does not speak TLS here" (implicit TLS on a plain port).
NOT_TLS = {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}


def tls_problem(exc: BaseException) -> str | None:
    """What is wrong with the TLS settings if ``exc`` (or what it wraps) is a TLS failure no
    retry can fix: an untrusted certificate, or a server not speaking TLS on that port. A
    handshake cut off midway (EOF, reset) may pass and is not one of them."""
    seen = ssl_error_in(exc)
    if isinstance(seen, ssl.SSLCertVerificationError):
        return (
            f"the SMTP server's certificate was refused ({seen.verify_message}): "
            "AMBIENT_SMTP_HOST must be the name on a certificate the worker trusts"
        )
    if isinstance(seen, ssl.SSLError) and seen.reason in NOT_TLS:
        return (
            f"the SMTP server does not speak TLS on this port ({seen.reason}): check "
            "AMBIENT_SMTP_TLS and AMBIENT_SMTP_PORT (ssl: port 465; starttls: 587; none)"
        )
    return None
