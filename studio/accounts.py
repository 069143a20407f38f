"""Login accounts, kept in the workspace database (the app is their only owner).

Users, failed-login counters, live login cookies, the cookie key and first-run setup tokens
live in their own tables on the same SQLAlchemy engine as the Store, so every app replica (and
the CLI) sees the same accounts. streamlit-authenticator draws the login form and sets the
cookie, but it gets a credentials dict built from here on each run and never writes anything;
these methods decide who signs in.

No default password ships: the first account (made on the first-run page or with
`python -m studio users add NAME`) is an admin. Passwords are bcrypt-hashed; a workspace from
before this module (users.yaml) is imported once.

Every change to an account names who makes it (a Store `Actor`), and the change checks, in its
own write transaction, that this actor is an admin now by the database's word: a page drawn
before its admin was demoted cannot still change accounts (Streamlit runs a button's callback
before the script that would read the role again).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import wraps
from pathlib import Path

import bcrypt
import jwt   # PyJWT, which streamlit-authenticator signs its login cookie with
import yaml
from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, Text,
                        delete, func, insert, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from studio.store import Actor, Store, UserData

LOG = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_BYTES = 72      # bcrypt looks at no more than this (and refuses longer input)
NAME_LENGTH = 100

COOKIE_NAME = "assistant_studio_auth"
COOKIE_EXPIRY_DAYS = 30

MAX_FAILURES = 5             # failed logins in a row before a name is locked
FIRST_LOCK = timedelta(seconds=30)
LONGEST_LOCK = timedelta(hours=1)
FORGET_FAILURES_AFTER = timedelta(days=1)

SETUP_TOKEN_LIFETIME = timedelta(hours=24)

# The person at the server's shell (the `python -m studio users` commands): they can read and
# write the workspace database anyway, so they act as an admin without an account. No account
# can have this name (the username rule has no spaces or brackets).
OPERATOR = Actor("(server operator)", admin=True)

# Checked against when the user name is unknown, so that an unknown name costs the same bcrypt
# work as a known one (its password is unknown to everyone: it was thrown away).
DUMMY_HASH = b"$2b$12$TbWEFzUnCbB7XehHcqj7l.9ojKxDqcrra4LqyD4Gpm25UprEJ/xxS"

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("username", String(32), primary_key=True),
    Column("display_name", String(NAME_LENGTH), nullable=False),
    Column("password_hash", String(100), nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
login_failures = Table(
    "login_failures", metadata,
    Column("username", String(32), primary_key=True),   # also names that have no account
    Column("failures", Integer, nullable=False),
    Column("last_failure", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
)
# The login cookies that still sign in: recorded at login, deleted at logout, on a password
# change and with the account. A copy of a cookie that is not here (or a forged one made with a
# leaked key for a removed account) signs nobody in.
login_cookies = Table(
    "login_cookies", metadata,
    Column("cookie_id", String(64), primary_key=True),    # sha256 of the cookie's claims
    Column("username", String(32), index=True, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
auth_settings = Table(   # the cookie key, and who claimed the first-run page
    "auth_settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
setup_tokens = Table(
    "setup_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class UserError(ValueError):
    """A user-facing problem with a username or password."""


class NotAdmin(UserError):
    """The acting user is not an admin (any more) and may not make this change."""


class AccountsUnavailable(RuntimeError):
    """The accounts cannot be read or written (database down, locked, or an unreadable
    users.yaml to import). Nobody can sign in until an administrator fixes it."""


class LoginLocked(Exception):
    """Too many failed logins for this name: refused without looking at the password."""

    def __init__(self, until: datetime):
        self.until = until
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The refusal as the user reads it, with how long to wait."""
        wait = max(1, math.ceil((self.until - _now()).total_seconds()))
        if wait < 90:
            when = f"{wait} seconds"
        elif wait < 90 * 60:
            when = f"{round(wait / 60)} minutes"
        else:
            when = f"{round(wait / 3600)} hours"
        return f"Too many failed logins for this name. Try again in {when}."


@dataclass(frozen=True)
class Account:
    """A login account as the app sees it: user name, display name, admin or not."""
    username: str
    name: str
    admin: bool

    @property
    def roles(self) -> list[str]:
        """The roles the login widget keeps: ["admin"] or ["user"]."""
        return ["admin"] if self.admin else ["user"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; they were written as UTC.
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _cookie_id(username: str, exp_date: float) -> str:
    # The library's cookie is a signed JWT of exactly these two claims.
    return _sha256(f"{username}\n{exp_date!r}")


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive and trimmed, as the login form treats them."""
    return (username or "").strip().lower()


def check_username(username: str) -> str:
    """The normalized username, or UserError saying what a username may be."""
    username = normalize_username(username)
    if not USERNAME_PATTERN.match(username):
        raise UserError("A username is 2–32 characters: lowercase letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit.")
    return username


def check_password(password: str) -> str:
    """The password if it follows the rule, else UserError saying which part it breaks.

    The rule: 8 characters or more, at most 72 bytes in UTF-8 (bcrypt's limit), no space at
    the start or end (the login form trims them) and no control characters.
    """
    password = password or ""
    if password != password.strip():
        raise UserError("A password cannot start or end with a space.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise UserError(f"A password can be at most {MAX_PASSWORD_BYTES} bytes long: 72 plain "
                        "letters or digits, fewer with accented letters or emoji.")
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise UserError("A password cannot contain control characters (tabs, line breaks and such).")
    return password


def _check_display_name(name: str, username: str) -> str:
    name = " ".join((name or "").split())
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise UserError("A display name cannot contain control characters.")
    if len(name) > NAME_LENGTH:
        raise UserError(f"A display name can be at most {NAME_LENGTH} characters.")
    return name or username


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode()


def _password_matches(password: str, stored_hash: str | None) -> bool:
    """bcrypt check, with the same cost whether or not there is a stored hash."""
    data = (password or "").encode("utf-8")
    fits = len(data) <= MAX_PASSWORD_BYTES
    try:
        matched = bcrypt.checkpw(data if fits else b"", (stored_hash or "").encode() or DUMMY_HASH)
    except ValueError:   # a damaged hash in the database: no password matches it
        bcrypt.checkpw(b"", DUMMY_HASH)
        matched = False
    return matched and fits and stored_hash is not None


def _guarded(method):
    """Database failures become AccountsUnavailable, with no SQL or values in the text."""
    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            LOG.warning("accounts database failed in %s: %s", method.__name__, type(exc).__name__)
            reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
            raise AccountsUnavailable(f"The accounts database could not be used ({reason}).") from exc
    return wrapper


class Accounts:
    """The login accounts on `engine` (the Store's). Every method reads or writes the database
    directly, so what one app replica or the CLI changes, the next page run everywhere sees."""

    def __init__(self, engine: Engine):
        self.engine = engine
        # The Store's engine starts transactions with this option as BEGIN IMMEDIATE on SQLite,
        # so a read-then-write (count the admins, then demote one) cannot interleave with another.
        self._writer = engine.execution_options(studio_write=True)
        self._create_tables()

    @_guarded
    def _create_tables(self) -> None:
        with self._writer.begin() as db:
            metadata.create_all(db)

    # --- reading -------------------------------------------------------------------------------

    @_guarded
    def has_users(self) -> bool:
        """Whether any account exists (if not, the app offers the first-run page)."""
        with self.engine.connect() as db:
            return db.execute(select(users.c.username).limit(1)).first() is not None

    @_guarded
    def list_users(self) -> list[Account]:
        """Every account, sorted by username."""
        with self.engine.connect() as db:
            rows = db.execute(select(users.c.username, users.c.display_name, users.c.admin)
                              .order_by(users.c.username)).all()
        return [Account(r.username, r.display_name, bool(r.admin)) for r in rows]

    @_guarded
    def get(self, username: str) -> Account | None:
        """The account, or None if there is none by this name."""
        with self.engine.connect() as db:
            row = db.execute(select(users.c.username, users.c.display_name, users.c.admin)
                             .where(users.c.username == normalize_username(username))).first()
        return Account(row.username, row.display_name, bool(row.admin)) if row else None

    @_guarded
    def credentials(self) -> dict:
        """The accounts in the shape streamlit-authenticator reads. A fresh dict on every call:
        whatever the library changes in it stays in that dict."""
        with self.engine.connect() as db:
            rows = db.execute(select(users)).all()
        return {"usernames": {
            r.username: {"first_name": r.display_name, "last_name": "", "email": None,
                         "password": r.password_hash, "roles": ["admin"] if r.admin else ["user"],
                         "failed_login_attempts": 0, "logged_in": False}
            for r in rows}}

    @_guarded
    def cookie_key(self) -> str:
        """The key that signs login cookies: made once, then the same for every replica."""
        with self.engine.connect() as db:
            key = db.execute(select(auth_settings.c.value)
                             .where(auth_settings.c.key == "cookie_key")).scalar()
        if key:
            return key
        try:
            with self._writer.begin() as db:
                db.execute(insert(auth_settings).values(key="cookie_key", value=secrets.token_hex(32)))
        except IntegrityError:
            pass   # another process made it first: use theirs
        with self.engine.connect() as db:
            return db.execute(select(auth_settings.c.value)
                              .where(auth_settings.c.key == "cookie_key")).scalar_one()

    @_guarded
    def locked_until(self, username: str) -> datetime | None:
        """When the lock on this name ends, if it is locked now."""
        with self.engine.connect() as db:
            until = _aware(db.execute(select(login_failures.c.locked_until).where(
                login_failures.c.username == normalize_username(username))).scalar())
        return until if until and until > _now() else None

    @_guarded
    def locks(self) -> dict[str, datetime]:
        """The names locked now, with when each lock ends."""
        now = _now()
        with self.engine.connect() as db:
            rows = db.execute(select(login_failures.c.username, login_failures.c.locked_until)
                              .where(login_failures.c.locked_until.is_not(None))).all()
        return {r.username: _aware(r.locked_until) for r in rows if _aware(r.locked_until) > now}

    # --- changing accounts ---------------------------------------------------------------------

    @_guarded
    def add_user(self, username: str, password: str, name: str = "", admin: bool | None = None, *,
                 actor: Actor) -> Account:
        """Add an account (`actor`: an admin, or OPERATOR); with `admin=None`, the very first
        account is an admin.

        Raises UserError with a message for the person typing if the name or password does not
        follow the rules or the name is taken, NotAdmin if the actor is not an admin now.
        """
        username = check_username(username)
        password = check_password(password)
        name = _check_display_name(name, username)
        password_hash = _hash(password)
        try:
            with self._writer.begin() as db:
                self._check_admin(db, actor)
                if admin is None:
                    admin = db.execute(select(users.c.username).limit(1)).first() is None
                db.execute(insert(users).values(
                    username=username, display_name=name, password_hash=password_hash,
                    admin=bool(admin), created_at=_now()))
        except IntegrityError:
            raise UserError(f"The user '{username}' already exists.") from None
        return Account(username, name, bool(admin))

    @_guarded
    def create_first_admin(self, username: str, password: str, name: str = "") -> Account:
        """The first-run page's account: an admin, made only while there is no account at all.

        Of two people submitting at once (even on two app replicas) one gets the account and
        the other a UserError. Setup tokens end with it.
        """
        username = check_username(username)
        name = _check_display_name(name, username)
        password_hash = _hash(check_password(password))
        taken = UserError("The first administrator has already been created: log in with that "
                          "account (another can be added with `python -m studio users add NAME --admin`).")
        try:
            with self._writer.begin() as db:
                if db.execute(select(users.c.username).limit(1)).first() is not None:
                    raise taken
                # One row only: a second claim fails here even where the check above cannot
                # see the first one's uncommitted account (PostgreSQL).
                db.execute(insert(auth_settings).values(key="first_admin", value=username))
                db.execute(insert(users).values(
                    username=username, display_name=name, password_hash=password_hash, admin=True,
                    created_at=_now()))
                db.execute(delete(setup_tokens))
        except IntegrityError:
            raise taken from None
        return Account(username, name, True)

    @_guarded
    def set_password(self, username: str, password: str, *, actor: Actor) -> None:
        """Give the account a new password (`actor`: an admin, OPERATOR, or the account's own
        user); its login cookies stop signing in (every session of it, on every replica, asks
        for the new password on its next page run)."""
        username = normalize_username(username)
        password_hash = _hash(check_password(password))
        with self._writer.begin() as db:
            if actor.name != username:
                self._check_admin(db, actor)
            done = db.execute(update(users).where(users.c.username == username)
                              .values(password_hash=password_hash)).rowcount
            db.execute(delete(login_failures).where(login_failures.c.username == username))
            db.execute(delete(login_cookies).where(login_cookies.c.username == username))
        if not done:
            raise UserError(f"There is no user '{normalize_username(username)}'.")

    @_guarded
    def set_admin(self, username: str, admin: bool, *, actor: Actor) -> None:
        """Give or take the admin role (`actor`: an admin, or OPERATOR). Taking it from the
        last admin is refused (UserError)."""
        username = normalize_username(username)
        with self._writer.begin() as db:
            self._check_admin(db, actor)
            if not admin:
                self._check_not_last_admin(db, username, "take the admin role from")
            done = db.execute(update(users).where(users.c.username == username)
                              .values(admin=bool(admin))).rowcount
        if not done:
            raise UserError(f"There is no user '{username}'.")

    @_guarded
    def unlock(self, username: str, *, actor: Actor) -> bool:
        """Forget the failed logins of a name, ending its lock (`actor`: an admin, or
        OPERATOR). Returns whether the name was locked."""
        username = normalize_username(username)
        with self._writer.begin() as db:
            self._check_admin(db, actor)
            until = _aware(db.execute(select(login_failures.c.locked_until)
                                      .where(login_failures.c.username == username)).scalar())
            db.execute(delete(login_failures).where(login_failures.c.username == username))
        return bool(until and until > _now())

    @_guarded
    def remove_user(self, username: str, *, actor: Actor, store: Store) -> UserData:
        """Delete the account and, in the same transaction, everything it kept in `store` (the
        workspace's Store): threads, assistants, datasets, fine-tuning jobs, knowledge bases and flags, so nobody
        given the name later inherits them. `actor`: an admin, or OPERATOR. Removing the last admin is refused
        (UserError); the account's cookies stop signing in at once. Returns what was deleted.
        """
        if store.engine.url != self.engine.url:
            raise ValueError("remove_user needs the Store of the same database as the accounts")
        from studio.datasets.storage import DatasetStore   # pandas-heavy: only when removing
        from studio.evaluation.runs import EvalStore
        from studio.finetune.jobs import JobStore
        from studio.knowledge.storage import KnowledgeStore
        datasets = DatasetStore(store.engine)   # makes sure its tables exist before the transaction
        jobs = JobStore(store.engine)
        evals = EvalStore(store.engine)
        KnowledgeStore.create_tables(store.engine)
        username = normalize_username(username)
        with self._writer.begin() as db:
            self._check_admin(db, actor)
            self._check_not_last_admin(db, username, "remove")
            done = db.execute(delete(users).where(users.c.username == username)).rowcount
            if not done:
                raise UserError(f"There is no user '{username}'.")
            db.execute(delete(login_failures).where(login_failures.c.username == username))
            db.execute(delete(login_cookies).where(login_cookies.c.username == username))
            datasets.delete_owned(db, username)
            jobs.delete_owned(db, username)
            evals.delete_owned(db, username)
            KnowledgeStore.delete_owned(db, username)     # their files go when the app next tidies up
            return store.delete_user_data(username, actor, within=db)

    @_guarded
    def check_removable(self, username: str) -> None:
        """UserError if there is no such account or it is the last admin: what remove_user
        would refuse, said before anyone is asked to confirm the removal."""
        username = normalize_username(username)
        with self.engine.connect() as db:
            if db.execute(select(users.c.username).where(users.c.username == username)).first() is None:
                raise UserError(f"There is no user '{username}'.")
            self._check_not_last_admin(db, username, "remove")

    @staticmethod
    def _check_admin(db, actor: Actor) -> None:
        """Inside a write transaction: the actor is an admin now, as the database says (not as
        the session remembers), and stays one until the change commits."""
        if actor == OPERATOR:
            return
        admin = db.execute(select(users.c.admin).where(users.c.username == normalize_username(actor.name))
                           .with_for_update()).scalar()
        if not admin:
            raise NotAdmin("Only an administrator can change other users' accounts, and your account "
                           "is not one (any more). Nothing was changed.")

    @staticmethod
    def _check_not_last_admin(db, username: str, doing: str) -> None:
        # Lock the admins' rows (PostgreSQL) so two admins demoting each other cannot both pass.
        admins = db.execute(select(users.c.username).where(users.c.admin.is_(True))
                            .with_for_update()).scalars().all()
        if admins == [username]:
            raise UserError(f"You cannot {doing} the last admin: make another user an admin first.")

    # --- signing in ----------------------------------------------------------------------------

    @_guarded
    def authenticate(self, username: str, password: str) -> Account | None:
        """The account if the password is right, None if not.

        Each attempt is counted as a failure of the name typed (known or not, so a lock says
        nothing about which names exist) in a write transaction *before* its password is
        checked, and a right password then clears the count: of any number of attempts made at
        once, at most MAX_FAILURES have their password checked before the name is locked. A
        locked name raises LoginLocked without its password being looked at; the attempt that
        reaches the limit raises LoginLocked if its password is wrong. An unknown name is
        checked against a dummy hash, so it takes as long as a known one.
        """
        username = normalize_username(username)
        if not USERNAME_PATTERN.match(username):   # can never be an account (nor reach the database)
            _password_matches(password, None)
            return None
        row, lock_for = self._count_attempt(username)   # may raise LoginLocked
        if _password_matches(password, row.password_hash if row else None):
            with self._writer.begin() as db:
                db.execute(delete(login_failures).where(login_failures.c.username == username))
            return Account(row.username, row.display_name, bool(row.admin))
        if lock_for:
            # The lock was set before the check; it runs from this failure, as the person sees it.
            until = _now() + lock_for
            with self._writer.begin() as db:
                still_locked = db.execute(update(login_failures).where(
                    login_failures.c.username == username, login_failures.c.locked_until.is_not(None))
                    .values(locked_until=until)).rowcount
            if still_locked:   # (not when a right password at the same moment cleared it)
                raise LoginLocked(until)
        return None

    def _count_attempt(self, username: str):
        """Count a login attempt as failed until its password proves right; raise LoginLocked
        if the name is locked. Returns the account's row (None for an unknown name) and, when
        this attempt reaches the limit, how long the lock it has already set lasts."""
        now = _now()
        for first_try in (True, False):
            try:
                with self._writer.begin() as db:
                    record = db.execute(select(login_failures.c.failures, login_failures.c.locked_until)
                                        .where(login_failures.c.username == username)
                                        .with_for_update()).first()
                    until = _aware(record.locked_until) if record else None
                    if until and until > now:
                        raise LoginLocked(until)
                    failures = (record.failures if record else 0) + 1
                    lock_for = None
                    if failures >= MAX_FAILURES:
                        # Capped exponent: a name tried for days must not overflow the date.
                        lock_for = min(FIRST_LOCK * 2 ** min(failures - MAX_FAILURES, 16), LONGEST_LOCK)
                    values = dict(failures=failures, last_failure=now,
                                  locked_until=now + lock_for if lock_for else None)
                    if record:
                        db.execute(update(login_failures).where(login_failures.c.username == username)
                                   .values(**values))
                    else:
                        db.execute(insert(login_failures).values(username=username, **values))
                    # Names tried once long ago (mostly ones without an account) are forgotten.
                    db.execute(delete(login_failures).where(
                        login_failures.c.last_failure < now - FORGET_FAILURES_AFTER,
                        (login_failures.c.locked_until.is_(None)) | (login_failures.c.locked_until < now)))
                    row = db.execute(select(users.c.username, users.c.display_name, users.c.admin,
                                            users.c.password_hash).where(users.c.username == username)).first()
                return row, lock_for
            except IntegrityError:
                # Two first attempts on one name at once (PostgreSQL): the row exists now.
                if not first_try:
                    raise

    @_guarded
    def record_cookie(self, username: str, exp_date: float) -> None:
        """Note the login cookie just given to a browser (its claims: user and expiry date)."""
        now = _now()
        try:
            with self._writer.begin() as db:
                db.execute(delete(login_cookies).where(login_cookies.c.expires_at < now))
                db.execute(insert(login_cookies).values(
                    cookie_id=_cookie_id(normalize_username(username), exp_date),
                    username=normalize_username(username),
                    expires_at=datetime.fromtimestamp(exp_date, timezone.utc)))
        except IntegrityError:
            pass   # the same cookie noted twice

    @_guarded
    def check_cookie(self, username: str, exp_date: float) -> Account | None:
        """The account a login cookie (its signature already verified) signs in, or None when
        the cookie was ended (logout, password change), has expired, or the account is gone."""
        username = normalize_username(username)
        with self.engine.connect() as db:
            live = db.execute(select(login_cookies.c.expires_at).where(
                login_cookies.c.cookie_id == _cookie_id(username, exp_date))).scalar()
        if live is None or _aware(live) <= _now():
            return None
        return self.get(username)

    def cookie_claims(self, token: str) -> tuple[str, float] | None:
        """The (username, expiry date) a login cookie carries, when its signature is this
        workspace's and it has not expired; None for anything else (forged, garbled, old)."""
        try:
            claims = jwt.decode(token, self.cookie_key(), algorithms=["HS256"])
            username, exp_date = claims["username"], float(claims["exp_date"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return None
        if not isinstance(username, str) or exp_date <= time.time():
            return None
        return username, exp_date

    @_guarded
    def revoke_cookie(self, username: str, exp_date: float) -> None:
        """End a login cookie for good (at logout): neither it nor a copy signs in again."""
        with self._writer.begin() as db:
            db.execute(delete(login_cookies).where(
                login_cookies.c.cookie_id == _cookie_id(normalize_username(username), exp_date)))

    # --- first run -----------------------------------------------------------------------------

    @_guarded
    def new_setup_token(self) -> str:
        """A one-time token that lets a visitor who is not on the server's machine create the
        first admin, valid for SETUP_TOKEN_LIFETIME. Only its hash is kept; expired tokens are
        deleted here, and all tokens end when the first admin exists."""
        token = secrets.token_urlsafe(16)
        now = _now()
        with self._writer.begin() as db:
            db.execute(delete(setup_tokens).where(setup_tokens.c.created_at < now - SETUP_TOKEN_LIFETIME))
            db.execute(insert(setup_tokens).values(token_hash=_sha256(token), created_at=now))
        return token

    @_guarded
    def setup_token_is_valid(self, token: str) -> bool:
        """Whether `token` is one printed by a server of this workspace, not used yet and
        younger than SETUP_TOKEN_LIFETIME."""
        token = (token or "").strip()
        if not token:
            return False
        with self.engine.connect() as db:
            rows = db.execute(select(setup_tokens.c.token_hash, setup_tokens.c.created_at)).all()
        wanted, oldest = _sha256(token), _now() - SETUP_TOKEN_LIFETIME
        return any(hmac.compare_digest(wanted, r.token_hash) and _aware(r.created_at) > oldest for r in rows)

    # --- an older workspace --------------------------------------------------------------------

    def import_user_file(self, path: Path) -> int:
        """Import the accounts of a workspace made before they moved to the database.

        Only when the database has no account yet; the file is then renamed to
        users.yaml.imported. Passwords and roles carry over; everyone logs in once more (the
        old login cookies are not carried). Returns how many accounts were imported. A file that cannot be read
        raises AccountsUnavailable: the app must not offer a fresh first run over real accounts.
        """
        path = Path(path)
        if not path.exists() or self.has_users():
            return 0
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            entries = (data.get("credentials") or {}).get("usernames") or {}
            if not isinstance(entries, dict):
                raise ValueError("its 'credentials: usernames:' part is not a mapping")
        except (OSError, ValueError, yaml.YAMLError, AttributeError) as exc:
            raise AccountsUnavailable(
                f"The accounts file {path} could not be imported ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}). Fix or move it away; "
                f"until then nobody can sign in.") from exc
        rows = []
        for name, entry in entries.items():
            username = normalize_username(str(name))
            stored = str((entry or {}).get("password") or "")
            if not USERNAME_PATTERN.match(username) or not stored.startswith("$2"):
                LOG.warning("users.yaml: skipped the entry %r (no valid name or password hash)", username)
                continue
            try:
                display_name = _check_display_name(str(entry.get("first_name") or ""), username)
            except UserError:
                display_name = username
            rows.append(dict(username=username, display_name=display_name, password_hash=stored,
                             admin="admin" in (entry.get("roles") or []), created_at=_now()))
        self._import_rows(rows)
        try:
            path.replace(path.with_name(path.name + ".imported"))
        except FileNotFoundError:
            pass   # another process imported it at the same moment
        LOG.info("imported %d account(s) from %s", len(rows), path)
        return len(rows)

    @_guarded
    def _import_rows(self, rows: list[dict]) -> None:
        try:
            with self._writer.begin() as db:
                if db.execute(select(func.count()).select_from(users)).scalar():
                    return
                if rows:
                    db.execute(insert(users), rows)
        except IntegrityError:
            pass   # another process imported the same file at the same moment
