"""Users: register, read and update settings, rotate the API token."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from ambient.domain.push import PushConfig
from ambient.domain.users import UserCreate, UserPublic, UserSettings
from ambient.storage.repositories import UserExistsError, UserRepository, user_public
from api.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/users", tags=["users"])


class Registered(BaseModel):
    user: UserPublic
    token: str


class Token(BaseModel):
    token: str


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Registered)
async def register(data: UserCreate, session: SessionDep) -> Registered:
    """Register a user; the API token in the answer is shown once."""
    try:
        user, token = await UserRepository(session).create(data)
    except UserExistsError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"user {data.name!r} already exists"
        ) from None
    await session.commit()
    return Registered(user=user_public(user), token=token)


@router.get("/me", response_model=UserPublic)
async def read_me(user: CurrentUser) -> UserPublic:
    return user_public(user)


@router.patch("/me", response_model=UserPublic)
async def update_me(data: UserSettings, user: CurrentUser, session: SessionDep) -> UserPublic:
    """Change settings: email, phone, rollback permission, wake words, time zone, window..."""
    # The user was loaded in this request's session (FastAPI shares the dependency).
    await UserRepository(session).update(user, data)
    await session.commit()
    return user_public(user)


@router.post("/me/token", response_model=Token)
async def rotate_token(user: CurrentUser, session: SessionDep) -> Token:
    """Issue a new API token; the old one stops working."""
    token = await UserRepository(session).rotate_token(user)
    await session.commit()
    return Token(token=token)


@router.get("/me/push", response_model=PushConfig)
async def read_push_config(user: CurrentUser) -> PushConfig:
    return PushConfig.model_validate(user.push_config)


@router.put("/me/push", response_model=PushConfig)
async def set_push_config(config: PushConfig, user: CurrentUser, session: SessionDep) -> PushConfig:
    """Replace the caller's push channels and quiet hours."""
    await UserRepository(session).set_push_config(user, config.model_dump(mode="json"))
    await session.commit()
    return config


@router.get("/{name}", response_model=UserPublic)
async def read_user(name: str, user: CurrentUser) -> UserPublic:
    """A user's settings; users read only their own."""
    if name != user.name:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you can read only your own user")
    return user_public(user)
