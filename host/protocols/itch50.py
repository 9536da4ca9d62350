"""Nasdaq TotalView-ITCH 5.0: every message of the outbound feed, declared once.

Each message is a fixed-length big-endian record that starts with a one-byte
message type and the common header (``stock_locate`` u16, ``tracking_number``
u16, ``timestamp`` u48 nanoseconds since midnight).  The declarations below
follow the order and field names of the specification (snake_case); the byte
offsets they produce are pinned by ``tests/protocols/test_itch50.py`` against a
table written from the specification.

Prices stay integers: ``Price(4)`` fields are ``price4`` (4 implied decimals),
the MWCB levels are ``price8`` (8 implied decimals).  Alpha fields decode to
str with the right padding removed (a 1-byte code keeps its space).

Decoding never guesses: a message must occupy exactly its declared length
(``decode_message(buf, offset, end)`` decodes ``buf[offset:end]``) and every
problem raises a :class:`~host.protocols.errors.DecodeError` whose ``reason``
is a drop-counter key.  ``ITCH.decode_or_count`` is the counting variant.

The code tables (``SYSTEM_EVENT_CODES``, ``TRADING_STATES``, ``CROSS_TYPES``,
...) are for human-readable output only; decoding does not reject codes that
are missing from them, because Nasdaq adds codes without changing layouts.
"""
from __future__ import annotations

from host.protocols.errors import TruncatedMessage
from host.protocols.layout import Message, Registry, message

PROTOCOL = "ITCH 5.0"

# Every message starts with these, right after the type byte (offsets 1, 3, 5).
_HEADER = [
    ("stock_locate", "u16"),
    ("tracking_number", "u16"),
    ("timestamp", "u48"),
]


def _itch(class_name: str, type_code: str, name: str, fields: list[tuple[str, str]]) -> type:
    return message(class_name, type_code, _HEADER + fields, name=name)


# -- 1.1 system event ---------------------------------------------------------
SystemEvent = _itch("SystemEvent", "S", "System Event", [
    ("event_code", "alpha1"),
])

# -- 1.2 stock related --------------------------------------------------------
StockDirectory = _itch("StockDirectory", "R", "Stock Directory", [
    ("stock", "alpha8"),
    ("market_category", "alpha1"),
    ("financial_status_indicator", "alpha1"),
    ("round_lot_size", "u32"),
    ("round_lots_only", "alpha1"),
    ("issue_classification", "alpha1"),
    ("issue_sub_type", "alpha2"),
    ("authenticity", "alpha1"),
    ("short_sale_threshold_indicator", "alpha1"),
    ("ipo_flag", "alpha1"),
    ("luld_reference_price_tier", "alpha1"),
    ("etp_flag", "alpha1"),
    ("etp_leverage_factor", "u32"),
    ("inverse_indicator", "alpha1"),
])

StockTradingAction = _itch("StockTradingAction", "H", "Stock Trading Action", [
    ("stock", "alpha8"),
    ("trading_state", "alpha1"),
    ("reserved", "alpha1"),
    ("reason", "alpha4"),
])

RegSHORestriction = _itch("RegSHORestriction", "Y", "Reg SHO Short Sale Price Test Restricted Indicator", [
    ("stock", "alpha8"),
    ("reg_sho_action", "alpha1"),
])

MarketParticipantPosition = _itch("MarketParticipantPosition", "L", "Market Participant Position", [
    ("mpid", "alpha4"),
    ("stock", "alpha8"),
    ("primary_market_maker", "alpha1"),
    ("market_maker_mode", "alpha1"),
    ("market_participant_state", "alpha1"),
])

MWCBDeclineLevel = _itch("MWCBDeclineLevel", "V", "MWCB Decline Level", [
    ("level_1", "price8"),
    ("level_2", "price8"),
    ("level_3", "price8"),
])

MWCBStatus = _itch("MWCBStatus", "W", "MWCB Status", [
    ("breached_level", "alpha1"),
])

IPOQuotingPeriodUpdate = _itch("IPOQuotingPeriodUpdate", "K", "IPO Quoting Period Update", [
    ("stock", "alpha8"),
    ("ipo_quotation_release_time", "u32"),  # seconds since midnight
    ("ipo_quotation_release_qualifier", "alpha1"),
    ("ipo_price", "price4"),
])

LULDAuctionCollar = _itch("LULDAuctionCollar", "J", "LULD Auction Collar", [
    ("stock", "alpha8"),
    ("auction_collar_reference_price", "price4"),
    ("upper_auction_collar_price", "price4"),
    ("lower_auction_collar_price", "price4"),
    ("auction_collar_extension", "u32"),
])

OperationalHalt = _itch("OperationalHalt", "h", "Operational Halt", [
    ("stock", "alpha8"),
    ("market_code", "alpha1"),
    ("operational_halt_action", "alpha1"),
])

# -- 1.3 add order ------------------------------------------------------------
_ADD_ORDER = [
    ("order_reference_number", "u64"),
    ("buy_sell_indicator", "alpha1"),
    ("shares", "u32"),
    ("stock", "alpha8"),
    ("price", "price4"),
]

AddOrder = _itch("AddOrder", "A", "Add Order - No MPID Attribution", _ADD_ORDER)

AddOrderMPID = _itch("AddOrderMPID", "F", "Add Order with MPID Attribution", _ADD_ORDER + [
    ("attribution", "alpha4"),
])

# -- 1.4 modify order ---------------------------------------------------------
_EXECUTED = [
    ("order_reference_number", "u64"),
    ("executed_shares", "u32"),
    ("match_number", "u64"),
]

OrderExecuted = _itch("OrderExecuted", "E", "Order Executed", _EXECUTED)

OrderExecutedWithPrice = _itch("OrderExecutedWithPrice", "C", "Order Executed With Price", _EXECUTED + [
    ("printable", "alpha1"),
    ("execution_price", "price4"),
])

OrderCancel = _itch("OrderCancel", "X", "Order Cancel", [
    ("order_reference_number", "u64"),
    ("canceled_shares", "u32"),
])

OrderDelete = _itch("OrderDelete", "D", "Order Delete", [
    ("order_reference_number", "u64"),
])

OrderReplace = _itch("OrderReplace", "U", "Order Replace", [
    ("original_order_reference_number", "u64"),
    ("new_order_reference_number", "u64"),
    ("shares", "u32"),
    ("price", "price4"),
])

# -- 1.5 trades ---------------------------------------------------------------
Trade = _itch("Trade", "P", "Trade (Non-Cross)", _ADD_ORDER + [
    ("match_number", "u64"),
])

CrossTrade = _itch("CrossTrade", "Q", "Cross Trade", [
    ("shares", "u64"),
    ("stock", "alpha8"),
    ("cross_price", "price4"),
    ("match_number", "u64"),
    ("cross_type", "alpha1"),
])

BrokenTrade = _itch("BrokenTrade", "B", "Broken Trade / Order Execution", [
    ("match_number", "u64"),
])

# -- 1.6 / 1.7 / 1.8 ----------------------------------------------------------
NOII = _itch("NOII", "I", "Net Order Imbalance Indicator", [
    ("paired_shares", "u64"),
    ("imbalance_shares", "u64"),
    ("imbalance_direction", "alpha1"),
    ("stock", "alpha8"),
    ("far_price", "price4"),
    ("near_price", "price4"),
    ("current_reference_price", "price4"),
    ("cross_type", "alpha1"),
    ("price_variation_indicator", "alpha1"),
])

RetailPriceImprovementIndicator = _itch("RetailPriceImprovementIndicator", "N",
                                        "Retail Price Improvement Indicator", [
    ("stock", "alpha8"),
    ("interest_flag", "alpha1"),
])

DLCRPriceDiscovery = _itch("DLCRPriceDiscovery", "O",
                           "Direct Listing with Capital Raise Price Discovery", [
    ("stock", "alpha8"),
    ("open_eligibility_status", "alpha1"),
    ("minimum_allowable_price", "price4"),
    ("maximum_allowable_price", "price4"),
    ("near_execution_price", "price4"),
    ("near_execution_time", "u64"),  # nanoseconds since midnight, 8 bytes here
    ("lower_price_range_collar", "price4"),
    ("upper_price_range_collar", "price4"),
])

MESSAGE_CLASSES: tuple[type, ...] = (
    SystemEvent, StockDirectory, StockTradingAction, RegSHORestriction,
    MarketParticipantPosition, MWCBDeclineLevel, MWCBStatus,
    IPOQuotingPeriodUpdate, LULDAuctionCollar, OperationalHalt,
    AddOrder, AddOrderMPID, OrderExecuted, OrderExecutedWithPrice,
    OrderCancel, OrderDelete, OrderReplace, Trade, CrossTrade, BrokenTrade,
    NOII, RetailPriceImprovementIndicator, DLCRPriceDiscovery,
)

ITCH = Registry(PROTOCOL, MESSAGE_CLASSES)

# type char -> total length in bytes, type byte included
MESSAGE_SIZES: dict[str, int] = {cls.TYPE: cls.fixed_size() for cls in MESSAGE_CLASSES}

# Order-book-changing types: what a book builder must see, in one place.
ORDER_MESSAGE_TYPES = frozenset("AFECXDU")


def decode_message(buf, offset: int = 0, end: int | None = None) -> Message:
    """Decode the one ITCH message that occupies ``buf[offset:end]`` exactly.

    ``end`` defaults to the end of ``buf``.  Raises a DecodeError subclass:
    TruncatedMessage, UnknownMessageType, LengthMismatch or BadFieldValue.
    """
    size = len(buf)
    if end is None:
        end = size
    # A range reaching outside the buffer would otherwise surface as a
    # struct.error deep in the layout code.
    if offset < 0 or end > size:
        raise TruncatedMessage(PROTOCOL, max(end - offset, 1), max(size - max(offset, 0), 0))
    return ITCH.decode(buf, offset, end)


def encode_message(msg: Message) -> bytes:
    return msg.encode()


# -- code tables for human-readable output -----------------------------------
SYSTEM_EVENT_CODES = {
    "O": "Start of Messages",
    "S": "Start of System hours",
    "Q": "Start of Market hours",
    "M": "End of Market hours",
    "E": "End of System hours",
    "C": "End of Messages",
}

TRADING_STATES = {
    "H": "Halted across all U.S. equity markets / SROs",
    "P": "Paused across all U.S. equity markets / SROs",
    "Q": "Quotation only period",
    "T": "Trading on Nasdaq",
}

CROSS_TYPES = {
    "O": "Nasdaq Opening Cross",
    "C": "Nasdaq Closing Cross",
    "H": "Cross for IPO and halted / paused securities",
    "I": "Nasdaq Cross Network: intraday and post-close cross",
    "A": "Extended Trading Close",
}

MARKET_CATEGORIES = {
    "Q": "Nasdaq Global Select Market",
    "G": "Nasdaq Global Market",
    "S": "Nasdaq Capital Market",
    "N": "New York Stock Exchange",
    "A": "NYSE American",
    "P": "NYSE Arca",
    "Z": "Cboe BZX",
    "V": "Investors' Exchange",
    " ": "Not available",
}

REG_SHO_ACTIONS = {
    "0": "No price test in place",
    "1": "Price test restriction in effect (intra-day price drop)",
    "2": "Price test restriction remains in effect",
}

IMBALANCE_DIRECTIONS = {
    "B": "Buy imbalance",
    "S": "Sell imbalance",
    "N": "No imbalance",
    "O": "Insufficient orders to calculate",
    "P": "Paused",
}

BUY_SELL = {"B": "Buy", "S": "Sell"}

INTEREST_FLAGS = {
    "B": "RPI orders available on the buy side",
    "S": "RPI orders available on the sell side",
    "A": "RPI orders available on both sides",
    "N": "No RPI orders available",
}

# field name -> its code table, so generic printers can annotate any message
CODE_TABLES = {
    "event_code": SYSTEM_EVENT_CODES,
    "trading_state": TRADING_STATES,
    "cross_type": CROSS_TYPES,
    "market_category": MARKET_CATEGORIES,
    "reg_sho_action": REG_SHO_ACTIONS,
    "imbalance_direction": IMBALANCE_DIRECTIONS,
    "buy_sell_indicator": BUY_SELL,
    "interest_flag": INTEREST_FLAGS,
}


def describe_code(field_name: str, code: str) -> str | None:
    """The human meaning of a 1-byte code field, or None if not tabulated."""
    table = CODE_TABLES.get(field_name)
    return None if table is None else table.get(code)


__all__ = [
    "PROTOCOL", "ITCH", "MESSAGE_CLASSES", "MESSAGE_SIZES", "ORDER_MESSAGE_TYPES",
    "decode_message", "encode_message", "describe_code", "CODE_TABLES",
    "SYSTEM_EVENT_CODES", "TRADING_STATES", "CROSS_TYPES", "MARKET_CATEGORIES",
    "REG_SHO_ACTIONS", "IMBALANCE_DIRECTIONS", "BUY_SELL", "INTEREST_FLAGS",
] + [cls.__name__ for cls in MESSAGE_CLASSES]
