"""Users: a YAML file in the workspace, in the layout streamlit-authenticator reads.

No default password ships: the first visit (or `python -m studio users add`) creates the
first account, which is an admin. Passwords are bcrypt-hashed; the cookie key is random,
generated once and kept in the same file.
"""
from __future__ import annotations

import re
import secrets
from pathlib import Path

import bcrypt
import yaml

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user-facing problem with a username or password."""


class UserFile:
    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict:
        """The whole config: {"credentials": {"usernames": {...}}, "cookie": {...}}."""
        data = {}
        if self.path.exists():
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        data.setdefault("credentials", {}).setdefault("usernames", {})
        if data["credentials"]["usernames"] is None:
            data["credentials"]["usernames"] = {}
        cookie = data.setdefault("cookie", {})
        if not cookie.get("key"):
            cookie.update(name="assistant_studio_auth", expiry_days=30, key=secrets.token_hex(32))
            self.save(data)
        return data

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def usernames(self) -> list[str]:
        return sorted(self.load()["credentials"]["usernames"])

    def has_users(self) -> bool:
        return bool(self.usernames())

    def roles(self, username: str) -> list[str]:
        user = self.load()["credentials"]["usernames"].get(username) or {}
        return list(user.get("roles") or [])

    def is_admin(self, username: str) -> bool:
        return "admin" in self.roles(username)

    def add_user(self, username: str, password: str, name: str = "", email: str = "",
                 admin: bool | None = None) -> None:
        """Add a user; the very first user is an admin. Raises UserError with a clear message."""
        username = username.strip().lower()
        if not USERNAME_PATTERN.match(username):
            raise UserError("A username is 2–32 characters: lowercase letters, digits, '.', '_' or '-'.")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
        data = self.load()
        users = data["credentials"]["usernames"]
        if username in users:
            raise UserError(f"The user '{username}' already exists.")
        if admin is None:
            admin = not users
        users[username] = {
            "email": email.strip() or f"{username}@localhost",
            "first_name": (name.strip() or username),
            "last_name": "",
            "password": bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode(),
            "roles": ["admin"] if admin else ["user"],
            "failed_login_attempts": 0,
            "logged_in": False,
        }
        self.save(data)

    def check_password(self, username: str, password: str) -> bool:
        user = self.load()["credentials"]["usernames"].get(username.strip().lower())
        return bool(user) and bcrypt.checkpw(password.encode(), user["password"].encode())
