"""Exchange simulator: a SoupBinTCP 3.0 server speaking OUCH 5.0 with a
price-time matching book per symbol, an optional external market (a best
bid and offer per symbol, or an ITCH book) that our orders trade against,
throttles, cancel-on-disconnect and a journal of everything it did."""
from host.exchange.config import UserConfig, UsersFileError, load_users
from host.exchange.engine import OuchExchange, PortSettings
from host.exchange.market import BboMarket, ExternalMarket, ItchMarket, Quote
from host.exchange.matching import RestingOrder, SymbolBook
from host.exchange.server import ExchangeConfig, ExchangeServer

__all__ = [
    "BboMarket", "ExchangeConfig", "ExchangeServer", "ExternalMarket", "ItchMarket",
    "OuchExchange", "PortSettings", "Quote", "RestingOrder", "SymbolBook", "UserConfig",
    "UsersFileError", "load_users",
]
