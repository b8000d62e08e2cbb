"""Bearer-token authentication: the full user, ``system:authenticated``, and the short memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.types import Scope

from shoal.api.authn import AUTH_MEMORY, TokenAuthentication
from shoal.security.tokens import TokenAuthenticator
from shoal.security.user import ANONYMOUS, APISERVER, UserInfo, authenticated


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scope(token: str | None) -> Scope:
    headers = [(b"user-agent", b"test")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {"type": "http", "path": "/api", "headers": headers}


def write_tokens(path: Path, *lines: str) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


async def test_the_user_comes_with_its_groups(tmp_path: Path) -> None:
    write_tokens(tmp_path / "tokens", 'a-token,alice,uid-1,"team-a,devs"', "b-token,bob,uid-2",
                 'c-token,carol,uid-3,"system:authenticated,ops"')
    authn = TokenAuthentication(TokenAuthenticator(tmp_path / "tokens"))
    assert await authn.authenticate(scope("a-token")) == UserInfo(
        "alice", "uid-1", ("team-a", "devs", "system:authenticated"), authenticated_by="token")
    assert (await authn.authenticate(scope("b-token"))) == UserInfo(
        "bob", "uid-2", ("system:authenticated",), authenticated_by="token")
    carol = await authn.authenticate(scope("c-token"))
    assert carol is not None and carol.groups == ("system:authenticated", "ops")  # never twice
    assert await authn.authenticate(scope(None)) is None
    assert await authn.authenticate(scope("nope")) is None


async def test_accepted_tokens_are_remembered_briefly(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, "a-token,alice,uid-1")
    clock = FakeClock()
    authn = TokenAuthentication(TokenAuthenticator(path), clock=clock)
    assert authn.memory == AUTH_MEMORY
    assert await authn.authenticate(scope("a-token")) is not None
    write_tokens(path, "other,zed,uid-9,group-with-longer-line")  # alice revoked
    clock.now += AUTH_MEMORY / 2
    assert await authn.authenticate(scope("a-token")) is not None  # still remembered
    clock.now += AUTH_MEMORY
    assert await authn.authenticate(scope("a-token")) is None


async def test_refused_tokens_are_checked_every_time(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, "a-token,alice,uid-1")
    authn = TokenAuthentication(TokenAuthenticator(path), clock=FakeClock())
    assert await authn.authenticate(scope("new-token")) is None
    write_tokens(path, "a-token,alice,uid-1", "new-token,nina,uid-2")
    user = await authn.authenticate(scope("new-token"))
    assert user is not None and user.name == "nina"


def test_authenticated_group_rules() -> None:
    assert ANONYMOUS.groups == ("system:unauthenticated",)
    assert authenticated(ANONYMOUS, "anonymous").groups == ("system:unauthenticated",)
    assert authenticated(UserInfo("system:anonymous"), "x").groups == ()
    assert "system:authenticated" in APISERVER.groups
    assert authenticated(UserInfo("u", groups=("system:unauthenticated",)), "x").groups == (
        "system:unauthenticated",)


def test_user_info_is_immutable_and_hashable() -> None:
    extra = {"scopes": ["a", "b"]}
    user = UserInfo("u", "1", ("g",), extra)  # type: ignore[arg-type]
    extra["scopes"].append("c")
    assert user.extra == {"scopes": ("a", "b")}
    with pytest.raises(TypeError):
        user.extra["new"] = ("x",)  # type: ignore[index]
    assert len({user, UserInfo("u", "1", ("g",), {"scopes": ("a", "b")})}) == 1
