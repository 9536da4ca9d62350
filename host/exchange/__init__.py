"""Exchange simulator: a SoupBinTCP 3.0 server speaking OUCH 5.0 with a
price-time matching book per symbol, for testing the order gateway."""
from host.exchange.engine import OuchExchange
from host.exchange.matching import RestingOrder, SymbolBook
from host.exchange.server import ExchangeConfig, ExchangeServer

__all__ = ["ExchangeConfig", "ExchangeServer", "OuchExchange", "RestingOrder", "SymbolBook"]
