"""Users of the exchange simulator: credentials and per-port settings.

A users file is JSON: an object from user name to either a password or an
object of settings::

    {
      "ZMM01": {"password": "s3cret", "firm": "ZMMF", "cancel_on_disconnect": true,
                "throttle": 200},
      "STREET": "pw2"
    }

* ``password``: SoupBinTCP login password (ASCII, at most 10 characters);
* ``firm``: the port's default firm (at most 4 characters; default the user
  name), used for orders without a Firm option, Disable/Enable Order Entry
  with a blank firm, and self-match prevention;
* ``firms``: the other firms the port may enter orders for (default: any);
* ``cancel_on_disconnect``: when the user's connection ends (logout, lost
  connection, heartbeat timeout) all its open orders are canceled and the
  Order Canceled messages wait in its session for the next login;
* ``throttle``: orders (Enter and Replace) per second for this port,
  overriding the exchange-wide ``--throttle``.

User names are SoupBinTCP usernames: ASCII, 1 to 6 characters.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class UsersFileError(ValueError):
    """The users file cannot be used; the message names the file and field."""


def _ascii(value: str, what: str, most: int, least: int = 0) -> str:
    if not value.isascii() or not least <= len(value) <= most:
        raise ValueError(f"{what} must be {least} to {most} ASCII characters")
    if value != value.strip(" "):
        raise ValueError(f"{what} must not start or end with spaces (the wire pads them)")
    return value


class UserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str
    firm: str = ""
    firms: frozenset[str] | None = None
    cancel_on_disconnect: bool = False
    throttle: int | None = Field(default=None, ge=1)

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        return _ascii(v, "password", 10)

    @field_validator("firm")
    @classmethod
    def _firm(cls, v: str) -> str:
        return _ascii(v, "firm", 4)

    @field_validator("firms")
    @classmethod
    def _firms(cls, v):
        if v is not None:
            for firm in v:
                _ascii(firm, "each of firms", 4, 1)
        return v


def check_user_name(name: str) -> str:
    return _ascii(name, f"user name {name!r}", 6, 1)


def as_user_config(value) -> UserConfig:
    if isinstance(value, UserConfig):
        return value
    if isinstance(value, str):
        return UserConfig(password=value)
    return UserConfig.model_validate(value)


def load_users(path: str | Path) -> dict[str, UserConfig]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsersFileError(f"{path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsersFileError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise UsersFileError(f"{path}: expected an object from user name to settings")
    users: dict[str, UserConfig] = {}
    for name, value in data.items():
        try:
            check_user_name(name)
            users[name] = as_user_config(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                for err in exc.errors())
            raise UsersFileError(f"{path}: user {name!r}: {problems}") from exc
        except ValueError as exc:
            raise UsersFileError(f"{path}: {exc}") from exc
    return users
