"""The appliance's configuration: one TOML file, validated before anything starts.

Every section is a pydantic model that refuses unknown keys, so a misspelt
setting is an error naming it instead of a silently ignored line.
:func:`load_config` turns validation failures into one :class:`ConfigError`
whose message lists each bad field as ``section.key: problem (allowed: ...)``.

Secrets (the exchange password, the management token) are never written in
the file itself: the file names an environment variable or a file holding
them, and they are held as ``SecretStr`` so they print as ``**********``.
"""
from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

BACKENDS = ("model", "rtl", "board")
INGESTS = ("pl", "ps-bridge", "replay")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _endpoint(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


class Appliance(_Section):
    name: str = "zynqmm"
    backend: Literal["model", "rtl", "board"] = "model"
    ingest: Literal["pl", "ps-bridge", "replay"] = "replay"
    board: Literal["kr260", "zcu102", "pynqz2"] | None = None
    state_dir: Path = Path("/var/lib/zynqmm")
    status_file: Path = Path("/run/zynqmm/status.json")

    @model_validator(mode="after")
    def _ingest_fits_backend(self):
        if self.ingest == "pl" and self.backend != "board":
            raise ValueError("ingest 'pl' (the fabric's own MAC) needs backend 'board'")
        if self.ingest == "pl" and self.board == "pynqz2":
            raise ValueError("pynqz2 has no Ethernet on the PL: use ingest 'ps-bridge'")
        return self


class Feed(_Section):
    """The two copies of the MoldUDP64 stream: multicast groups and ports."""

    a: str = "233.54.12.1:26400"
    b: str | None = "233.54.12.2:26400"
    interface: str | None = None        # ps-bridge: where to join the groups
    reference_price: Literal["mid", "microprice"] = "mid"

    @field_validator("a", "b")
    @classmethod
    def _group(cls, value):
        if value is None:
            return value
        host, _ = _endpoint(value, "a feed")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"feed address must be an IPv4 address, got {host!r}") from None
        return value

    def addresses(self) -> list[tuple[str, int]]:
        return [_endpoint(v, "feed") for v in (self.a, self.b) if v is not None]


class Chain(_Section):
    """European options on one underlying: every strike of the grid for each
    expiry, calls and/or puts, with one volatility and carry."""

    underlying: str
    strikes: list[float] = Field(min_length=1)
    expiries_days: list[float] = Field(min_length=1)
    kinds: list[Literal["call", "put"]] = ["call", "put"]
    sigma: float = Field(gt=0, le=4.0)
    rate: float = Field(ge=-0.05, le=0.25, default=0.04)
    dividend: float = Field(ge=-0.05, le=0.25, default=0.0)
    model: Literal["bs", "black76"] = "bs"
    # OUCH symbols of the options: ROOT + C/P + three-digit index (8 characters).
    root: str | None = None

    @field_validator("underlying")
    @classmethod
    def _symbol(cls, value):
        if not 1 <= len(value) <= 8 or not value.isascii() or not value.replace(".", "").isalnum():
            raise ValueError(f"an ITCH stock symbol is 1-8 ASCII letters/digits, got {value!r}")
        return value

    @field_validator("strikes")
    @classmethod
    def _strikes(cls, value):
        if any(not math.isfinite(k) or k <= 0 for k in value):
            raise ValueError("strikes must be positive numbers")
        return value

    @field_validator("expiries_days")
    @classmethod
    def _expiries(cls, value):
        if any(not math.isfinite(d) or not 0.36 <= d <= 2922 for d in value):
            raise ValueError("expiries_days must lie in [0.36, 2922] days (the pricer's range)")
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value):
        if value is not None and (not 1 <= len(value) <= 4 or not value.isalnum()):
            raise ValueError(f"root must be 1-4 letters/digits, got {value!r}")
        return value

    def option_count(self) -> int:
        return len(self.strikes) * len(self.expiries_days) * len(self.kinds)


class Exchange(_Section):
    """The OUCH 5.0 / SoupBinTCP order-entry session."""

    connect: str = "127.0.0.1:15000"
    username: str = Field(min_length=1, max_length=6)
    password_env: str | None = None
    password_file: Path | None = None
    session: str = ""
    heartbeat_interval: float = Field(gt=0, default=1.0)
    timeout: float = Field(gt=0, default=15.0)
    firm: str = Field(default="", max_length=4)

    @field_validator("connect")
    @classmethod
    def _connect(cls, value):
        _endpoint(value, "connect")
        return value

    @model_validator(mode="after")
    def _one_secret(self):
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env and password_file")
        return self

    def endpoint(self) -> tuple[str, int]:
        return _endpoint(self.connect, "connect")

    def password(self) -> SecretStr:
        return _read_secret(self.password_env, self.password_file, "exchange password")


class Metrics(_Section):
    """Health and metrics (Prometheus text) endpoint, guarded by a token."""

    enabled: bool = True
    listen: str = "127.0.0.1:9108"
    token_env: str | None = "ZYNQMM_TOKEN"
    token_file: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value):
        _endpoint(value, "listen")
        return value

    def endpoint(self) -> tuple[str, int]:
        return _endpoint(self.listen, "listen")

    def token(self) -> SecretStr:
        return _read_secret(self.token_env, self.token_file, "management token")


def _read_secret(env: str | None, path: Path | None, what: str) -> SecretStr:
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{what}: environment variable {env} is not set")
        return SecretStr(value)
    if path is not None:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{what}: {path} is empty")
        return SecretStr(value)
    raise ConfigError(f"{what}: no source configured")


def _price4(dollars: float, what: str) -> int:
    raw = round(dollars * 10_000)
    if abs(raw - dollars * 10_000) > 1e-6:
        raise ValueError(f"{what} {dollars} is not a whole number of 1/10000 dollars")
    return raw


class TickBandConfig(_Section):
    start: float = Field(ge=0)            # dollars: the band applies from here up
    size: float = Field(gt=0)             # dollars per tick


class Quoting(_Section):
    """The fabric quoter: bid = theo - half_spread - skew * position rounded
    down to the tick, ask = theo + half_spread - skew * position rounded up."""

    half_spread: float = Field(ge=0, default=0.05)          # dollars
    skew_per_contract: float = 0.0                           # dollars per contract held
    bid_size: int = Field(ge=0, lt=1 << 32, default=10)      # contracts
    ask_size: int = Field(ge=0, lt=1 << 32, default=10)
    min_edge: float = Field(ge=0, default=0.0)               # dollars
    requote_threshold: float = Field(ge=0, default=0.01)     # dollars
    ticks: list[TickBandConfig] = Field(
        default_factory=lambda: [TickBandConfig(start=0, size=0.01),
                                 TickBandConfig(start=3.0, size=0.05)],
        min_length=1, max_length=4)

    def settings(self):
        """The quoter's register values (:class:`rtl.quoter.model.QuoterSettings`)."""
        from rtl.quoter.model import QP_FRAC, QuoterSettings, TickBand, check_tick_table

        ticks = tuple(TickBand(_price4(t.start, "tick start"), _price4(t.size, "tick size"))
                      for t in self.ticks)
        check_tick_table(ticks)
        return QuoterSettings(
            half_spread=_price4(self.half_spread, "half_spread"),
            skew=round(self.skew_per_contract * 10_000 * (1 << QP_FRAC)),
            bid_size=self.bid_size, ask_size=self.ask_size,
            min_edge=_price4(self.min_edge, "min_edge"),
            requote_threshold=_price4(self.requote_threshold, "requote_threshold"), ticks=ticks)


PULL_FLAGS = {"not_trading": 0x01, "stale": 0x02, "crossed": 0x04, "no_directory": 0x08,
              "degraded": 0x10}


class Gate(_Section):
    """The fabric risk gate, the last check before a quote leaves the fabric."""

    start_killed: bool = False
    through_theo_limit: float = Field(ge=0, default=0.10)    # dollars through theo
    min_price: float = Field(gt=0, default=0.01)
    max_price: float = Field(gt=0, default=1000.0)
    max_updates: int = Field(ge=1, le=255, default=4)        # per option per window
    window_us: float = Field(gt=0, default=1000.0)
    pull_on: list[Literal["not_trading", "stale", "crossed", "no_directory", "degraded"]] = \
        ["stale", "degraded"]
    bid_enable: bool = True
    ask_enable: bool = True

    @model_validator(mode="after")
    def _band(self):
        if self.min_price > self.max_price:
            raise ValueError("min_price is above max_price")
        return self

    def settings(self, locates, core_mhz: float):
        """The gate's register values (:class:`rtl.risk_gate.model.GateSettings`)
        for the underlyings' stock locates at the fabric clock ``core_mhz``."""
        from rtl.risk_gate.model import UNDERLYINGS, GateSettings, UnderlyingEntry

        locates = list(locates)
        if len(locates) > UNDERLYINGS:
            raise ConfigError(f"{len(locates)} underlyings; the risk gate's table holds "
                              f"{UNDERLYINGS}")
        mask = 0
        for name in self.pull_on:
            mask |= PULL_FLAGS[name]
        return GateSettings(
            kill=self.start_killed, pull_mask=mask,
            through_limit=_price4(self.through_theo_limit, "through_theo_limit"),
            min_price=_price4(self.min_price, "min_price"),
            max_price=_price4(self.max_price, "max_price"),
            rate_count=self.max_updates, rate_window=round(self.window_us * core_mhz),
            underlyings=tuple(UnderlyingEntry(locate, self.bid_enable, self.ask_enable, True)
                              for locate in locates))


def _risk_limits():
    from host.risk.limits import RiskLimits
    return RiskLimits


class AppConfig(_Section):
    appliance: Appliance = Appliance()
    feed: Feed = Feed()
    chains: list[Chain] = Field(default_factory=list)
    quoting: Quoting = Quoting()
    gate: Gate = Gate()
    risk: _risk_limits() = Field(default_factory=lambda: _risk_limits()())
    exchange: Exchange | None = None
    metrics: Metrics = Metrics()

    def underlyings(self) -> list[str]:
        out = []
        for chain in self.chains:
            if chain.underlying not in out:
                out.append(chain.underlying)
        return out


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    elif error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"got {error.get('input')!r} (allowed: {expected})"
    return f"{where}: {message}"


def parse_config(text: str, source: str = "<config>") -> AppConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError(f"{source}: {len(lines)} problem(s)\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path) -> AppConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    return parse_config(text, str(path))
