"""Signing in and out of the web page, and open registration (AMBIENT_OPEN_REGISTRATION):
the API token kept in an HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ambient import grants
from ambient.domain.users import UserCreate
from ambient.refusals import N_
from ambient.storage.models import User, utcnow
from ambient.storage.users import (
    TOKEN_PREFIX,
    VOICE_TOKEN_PREFIX,
    UserExistsError,
    UserRepository,
    VoiceprintTakenError,
)
from api.deps import SessionDep, StateDep
from api.i18n import from_accept_language
from api.routers.page_words import field_errors
from api.routers.pages import (
    COOKIE,
    FormText,
    PageWords,
    back,
    keyed,
    page_router,
    render,
)

router = page_router()


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request) -> HTMLResponse:
    return render(request, "signin.html", {"error": None})


@router.post("/signin")
async def signin(
    request: Request, session: SessionDep, _: PageWords, token: FormText = ""
) -> Response:
    user = await UserRepository(session).by_token(token.strip()) if token.strip() else None
    if user is None:
        said = (
            _(
                "That is a voice token: it opens a 小智 server's voice tools only. "
                "Sign in with your API token."
            )
            if token.strip().startswith(VOICE_TOKEN_PREFIX)
            else _("That token is not valid. Use the token printed at registration.")
        )
        return render(request, "signin.html", {"error": said}, status.HTTP_401_UNAUTHORIZED)
    return _signed_in(back("/app"), request, token.strip())


def _signed_in(response: Response, request: Request, token: str) -> Response:
    # Secure when the pages are served over HTTPS, here or at AMBIENT_PUBLIC_URL: behind a
    # TLS proxy the request reaches the API as http (uvicorn trusts X-Forwarded-Proto from
    # loopback only), and the token's cookie would go out on any plain-HTTP request too.
    public = (request.app.state.settings.public_url or "").lower()
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or public.startswith("https://"),
        max_age=30 * 24 * 3600,
    )
    return response


@router.get("/register", response_class=HTMLResponse)
async def register_form(request: Request, state: StateDep) -> Response:
    if not state.settings.open_registration:
        return render(request, "register.html", {"closed": True}, status.HTTP_404_NOT_FOUND)
    # The form's own name: its API token is made from it (``_form_token``).
    typed = {"form": secrets.token_urlsafe(24)}
    return render(request, "register.html", {"closed": False, "error": None, "typed": typed})


@router.post("/register")
async def register(
    request: Request,
    state: StateDep,
    session: SessionDep,
    _: PageWords,
    name: FormText = "",
    email: FormText = "",
    form: FormText = "",
) -> Response:
    """Open registration (AMBIENT_OPEN_REGISTRATION): a member, signed in at once."""
    # The new user's language is the browser's if zh or en; else unchosen, so it follows
    # AMBIENT_DEFAULT_LANGUAGE.
    if not state.settings.open_registration:
        return render(request, "register.html", {"closed": True}, status.HTTP_404_NOT_FOUND)
    asked = from_accept_language(request.headers.get("accept-language"))
    made = _form_token(form, name.strip()) if form else None
    try:
        data = UserCreate.model_validate(
            {"name": name.strip(), "email": email.strip() or None, "language": asked}
        )
        user, token = await grants.register(
            session, None, data, settings=state.settings, token=made
        )
    except ValidationError as exc:
        error = field_errors(exc, _, REGISTER_LABELS)
    except UserExistsError:
        # The same form sent again with the same name (a double click): the user its first
        # submit made, whose page the browser dropped for this one. Its token, again, within
        # a minute of the first: a form resent later (Back after signing out on a shared
        # machine) shows nothing it made.
        again = await UserRepository(session).by_token(made) if made else None
        if made and again is not None and utcnow() - again.created_at < SAME_FORM_WITHIN:
            return _registered(request, again, made)
        error = _("name: %(name)s is taken", name=repr(name.strip()))
    except (VoiceprintTakenError, grants.RegistrationRefusedError):
        # Open registration takes no voiceprint (the name is one), nor a name the settings give
        # rights to: said as a name taken, not whose voice it names or what it is given.
        error = _("name: %(name)s is taken", name=repr(name.strip()))
    else:
        await session.commit()
        return _registered(request, user, token)
    # Shown again as the person filled it in.
    typed = {"name": name, "email": email, "form": form}
    return render(
        request,
        "register.html",
        {"closed": False, "error": error, "typed": typed},
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _registered(request: Request, user: User, token: str) -> Response:
    """The new user's page, its token shown once, signed in by that token."""
    page = render(request, "registered.html", {"user": user, "token": token})
    return _signed_in(page, request, token)


# How long a registration form's second submit shows the token its first made.
SAME_FORM_WITHIN = timedelta(minutes=1)


def _form_token(form: str, name: str) -> str:
    """The API token a registration form's submit of ``name`` makes: each time the same for
    one form and name (its second submit finds the user its first made; another name makes
    another), made with the server's key (no one chooses it, or makes another form's)."""
    return TOKEN_PREFIX + keyed("register", form, name)


# The registration form's fields as it labels them (refusals name the field by its label).
REGISTER_LABELS = {"name": N_("User name"), "email": N_("Email")}


@router.post("/signout")
async def signout() -> Response:
    response = back("/")
    response.delete_cookie(COOKIE)
    return response
