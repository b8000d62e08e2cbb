"""Static bearer tokens: the admin credential and the authenticator that checks them.

The file ``<data_dir>/tokens`` (mode 0600) uses Kubernetes' static token file format, one CSV
record per line: ``token,user,uid,"group1,group2"`` (the groups column is optional).  Blank
lines and lines starting with ``#`` are ignored.

Contract and invariants
-----------------------
* :func:`ensure_admin_token` returns the token of user ``shoal-admin`` (groups
  ``system:masters``), creating it on first start: 32 random bytes, urlsafe base64.  Other
  lines in the file are preserved.  The file is rewritten atomically (temp + rename).
* :class:`TokenAuthenticator` accepts only ``Authorization: Bearer <token>`` (scheme
  case-insensitive, exactly one space-separated token).  Anything else, or an unknown token,
  yields ``None`` (the API answers 401).  Every known token is compared with
  :func:`hmac.compare_digest`, without early exit, so timing does not reveal which prefix or
  which entry matched.
* Users come back as written in the file (:class:`~shoal.security.user.UserInfo` with its
  groups); the API's authentication stage (:mod:`shoal.api.authn`) adds
  ``system:authenticated`` and how the user authenticated.
* The file is re-read when its (mtime_ns, size, inode) changes, checked on every call.  A
  missing or malformed file raises :class:`TokenFileError`; no request is authenticated
  against a half-read file.
"""

from __future__ import annotations

import csv
import hmac
import io
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from shoal.kube.files import atomic_write
from shoal.security.user import UserInfo

ADMIN_USER = "shoal-admin"
ADMIN_GROUPS = ("system:masters",)
TOKEN_FILE_NAME = "tokens"


class TokenFileError(Exception):
    """The token file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token: str
    user: UserInfo


def parse_token_file(text: str, source: str = "<tokens>") -> list[TokenEntry]:
    """Parse static-token CSV text; raises :class:`TokenFileError` naming the bad line."""
    entries: list[TokenEntry] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise TokenFileError(f"{source}:{lineno}: {exc}") from exc
        if len(record) < 3 or len(record) > 4:
            raise TokenFileError(
                f"{source}:{lineno}: expected token,user,uid[,groups], got {len(record)} fields"
            )
        token, name, uid = (field.strip() for field in record[:3])
        if not token or not name:
            raise TokenFileError(f"{source}:{lineno}: token and user must not be empty")
        if token in seen:
            raise TokenFileError(f"{source}:{lineno}: duplicate token")
        seen.add(token)
        groups = tuple(g.strip() for g in record[3].split(",") if g.strip()) if len(record) == 4 else ()
        entries.append(TokenEntry(token, UserInfo(name, uid, groups)))
    return entries


def format_token_file(entries: list[TokenEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    for entry in entries:
        user = entry.user
        writer.writerow([entry.token, user.name, user.uid, ",".join(user.groups)])
    return out.getvalue()


def new_token() -> str:
    """32 random bytes, urlsafe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def ensure_admin_token(data_dir: Path) -> str:
    """Return the admin token from ``data_dir/tokens``, creating the file or the entry if needed."""
    path = data_dir / TOKEN_FILE_NAME
    entries: list[TokenEntry] = []
    if path.exists():
        entries = parse_token_file(path.read_text(encoding="utf-8"), str(path))
        for entry in entries:
            if entry.user.name == ADMIN_USER:
                return entry.token
    admin = TokenEntry(new_token(), UserInfo(ADMIN_USER, str(uuid.uuid4()), ADMIN_GROUPS))
    data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, format_token_file([*entries, admin]).encode("utf-8"), 0o600)
    return admin.token


def bearer_token(header_value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if absent or malformed."""
    if header_value is None:
        return None
    parts = header_value.strip().split(" ")
    if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


class TokenAuthenticator:
    """Authenticates bearer tokens against a static token file, reloading it when it changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._entries: list[tuple[bytes, UserInfo]] = []
        self._reload_if_changed()

    def authenticate(self, header_value: str | None) -> UserInfo | None:
        """The user owning the bearer token in ``header_value``, or None."""
        self._reload_if_changed()
        token = bearer_token(header_value)
        if token is None:
            return None
        try:
            presented = token.encode("ascii")
        except UnicodeEncodeError:
            return None
        found: UserInfo | None = None
        for known, user in self._entries:
            if hmac.compare_digest(known, presented) and found is None:
                found = user
        return found

    def _reload_if_changed(self) -> None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError as exc:
            raise TokenFileError(f"token file {self._path} does not exist") from exc
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        entries = parse_token_file(self._path.read_text(encoding="utf-8"), str(self._path))
        self._entries = [(e.token.encode("utf-8"), e.user) for e in entries]
        self._stamp = stamp
