"""Order gateway: SoupBinTCP client, OUCH 5.0 order manager and the journal
that makes both survive a restart."""
from host.gateway.gateway import OrderGateway, PreTradeRejected, rebuild
from host.gateway.orders import Order, OrderError, OrderManager, OrderState, TERMINAL_STATES
from host.gateway.soup_client import (
    LoginRejectedError,
    NotConnectedError,
    SoupClient,
    SoupClientError,
)

__all__ = [
    "LoginRejectedError", "NotConnectedError", "Order", "OrderError", "OrderGateway",
    "OrderManager", "OrderState", "PreTradeRejected", "SoupClient", "SoupClientError",
    "TERMINAL_STATES", "rebuild",
]
