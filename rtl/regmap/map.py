"""The register map of the fabric: the one declaration the AXI-Lite decode,
the host driver offsets and REGISTERS.md are all generated from."""
from __future__ import annotations

from rtl.common.axil import WINDOW_BYTES
from rtl.frame_filter import model as frame_filter
from rtl.itch_decoder import model as itch_decoder
from rtl.mold_seq import model as mold_seq
from rtl.regmap.spec import RO, RW, W1C, Block, Field, Register, map_version, validate

SYSTEM = Block(
    "system", 0x0000, WINDOW_BYTES,
    doc="Identity of the loaded bitstream; the host refuses a map version it was not built for.",
    registers=(
        Register("BUILD_ID", 0x000, (
            Field("build_id", 0, 32, RO, const=True,
                  doc="Build identifier baked in at conversion (commit prefix or ZYNQMM_BUILD_ID)."),),
            doc="Which build this bitstream came from."),
        Register("MAP_VERSION", 0x004, (
            Field("map_version", 0, 32, RO, const=True,
                  doc="Hash of the register-map declaration the bitstream was built from."),),
            doc="Must equal the host's MAP_VERSION."),
        Register("SCRATCH", 0x008, (
            Field("scratch", 0, 32, RW, doc="Free for bus tests; no effect."),),
            doc="Read/write test register."),
    ),
)


def _frame_filter_block() -> Block:
    registers = [
        Register("INFO", 0x000, (
            Field("filter_entries", 0, 8, RO, frame_filter.FILTER_ENTRIES, const=True,
                  doc="Entries in the filter table."),
            Field("payload_fifo_beats", 16, 16, RO, frame_filter.PAYLOAD_FIFO_BEATS, const=True,
                  doc="Payload buffer depth in 8-byte beats; longer payloads are dropped as oversize."),
        ), doc="Build parameters of the block."),
        Register("DROP_STATUS", 0x004, tuple(
            Field(f"seen_{reason}", bit, 1, W1C, doc=f"A frame was dropped as {reason}.")
            for bit, reason in enumerate(frame_filter.DROP_REASONS)),
            doc="Sticky: which drop reasons occurred since software last cleared them."),
    ]
    for i, name in enumerate(frame_filter.COUNTERS):
        what = {"frames": "Frames received.", "passed": "Frames whose payload was forwarded."}
        registers.append(Register(f"COUNT_{name.upper()}", 0x010 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO, doc=what.get(name, f"Frames dropped as {name}.")),),
            doc="32-bit event counter; wraps."))
    for n in range(frame_filter.FILTER_ENTRIES):
        base = 0x100 + 8 * n
        registers.append(Register(f"FILTER{n}_IP", base, (
            Field(f"filter{n}_ip", 0, 32, RW, doc="Destination IPv4 address to match."),),
            doc=f"Filter entry {n}: destination address."))
        registers.append(Register(f"FILTER{n}_PORT", base + 4, (
            Field(f"filter{n}_port", 0, 16, RW, doc="Destination UDP port to match."),
            Field(f"filter{n}_enable", 31, 1, RW, doc="Entry takes part in matching."),
        ), doc=f"Filter entry {n}: destination port and enable; the lowest matching entry wins."))
    return Block("frame_filter", 0x1000, WINDOW_BYTES, tuple(registers),
                 doc="Ethernet/VLAN/IPv4/UDP filter of the market-data feed.")


FRAME_FILTER = _frame_filter_block()
# Feed B's filter in the feed path: the same registers in a window of its
# own, so each feed has its own table (A and B arrive on different groups)
# and its own drop counters.
FRAME_FILTER_B = Block("frame_filter_b", 0x5000, WINDOW_BYTES, FRAME_FILTER.registers,
                       doc="Feed B's instance of the frame filter (same registers as "
                           "frame_filter, which serves feed A).")


def _itch_decoder_block() -> Block:
    general = {"messages": "Messages received.", "events": "Events emitted to the book.",
               "stale": "Messages the sequencer flagged stale (after an unrecovered gap).",
               "feed_b": "Messages that arrived via feed B."}
    registers = [
        Register("INFO", 0x000, (
            Field("subscription_entries", 0, 8, RO, itch_decoder.SUBSCRIPTION_ENTRIES, const=True,
                  doc="Entries in the locate-subscription table."),),
            doc="Build parameters of the block."),
        Register("CONTROL", 0x004, (
            Field("pass_all_locates", 0, 1, RW,
                  doc="Emit events of every locate, ignoring the subscription table."),),
            doc="Decoder control."),
        Register("DROP_STATUS", 0x008, tuple(
            Field(f"seen_{name}", bit, 1, W1C, doc=f"A message was counted as {name}.")
            for bit, name in enumerate(itch_decoder.STICKY)),
            doc="Sticky: bad input or staleness seen since software last cleared the bits."),
    ]
    for i, name in enumerate(itch_decoder.GENERAL_COUNTERS):
        registers.append(Register(f"COUNT_{name.upper()}", 0x010 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO,
                  doc=general.get(name, f"Messages dropped as {name}.")),),
            doc="32-bit counter; wraps."))
    for i, (code, name) in enumerate(itch_decoder.TYPE_COUNTERS.items()):
        registers.append(Register(f"COUNT_{name.upper()}", 0x040 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO,
                  doc=f"Well-formed '{code}' messages, whatever happened to them next."),),
            doc="32-bit counter; wraps."))
    for n in range(itch_decoder.SUBSCRIPTION_ENTRIES):
        registers.append(Register(f"SUB{n}", 0x100 + 4 * n, (
            Field(f"sub{n}_locate", 0, 16, RW, doc="Stock locate to subscribe."),
            Field(f"sub{n}_enable", 31, 1, RW, doc="Entry takes part in matching."),
        ), doc=f"Subscription entry {n}."))
    return Block("itch_decoder", 0x3000, WINDOW_BYTES, tuple(registers),
                 doc="ITCH 5.0 decoder: message counters by type and drop reason, "
                     "locate subscription.")


ITCH_DECODER = _itch_decoder_block()


def _mold_seq_block() -> Block:
    stream_docs = {
        "passed": "Messages that passed arbitration.",
        "duplicates": "Dropped copies of messages that had passed.",
        "late": "Dropped copies of messages skipped by a gap or before the first.",
        "gaps": "Gap events (data, heartbeat or end of session beyond next_seq).",
        "assumed_duplicates": "Dropped copies counted as duplicates because the gaps that "
                              "could make them late had left the gap table (also in DUPLICATES).",
        "events_lost": "Events that found the event FIFO full.",
    }
    feed_docs = {
        "packets": "Well-formed packets, any session.",
        "messages": "Message blocks in well-formed data packets, any session.",
        "heartbeats": "Heartbeats (message_count 0), any session.",
        "end_of_session": "End-of-session packets (message_count 0xFFFF), any session.",
        "other_session": "Well-formed packets of another session, dropped.",
        "passed": "Messages this feed delivered first.",
        "jumps": "Packets whose sequence number was above the feed's expectation.",
    }
    registers = [
        Register("INFO", 0x000, (
            Field("buffer_beats", 0, 16, RO, mold_seq.BUFFER_BEATS, const=True,
                  doc="Packet buffer per input, in 8-byte beats."),
            Field("gap_table_entries", 16, 8, RO, mold_seq.GAP_TABLE_ENTRIES, const=True,
                  doc="Gap events kept to tell late copies from duplicates."),
            Field("event_fifo_depth", 24, 8, RO, mold_seq.EVENT_FIFO_DEPTH, const=True,
                  doc="Entries of the event FIFO."),
        ), doc="Build parameters of the block."),
        Register("CONTROL", 0x004, (
            Field("session_from_register", 0, 1, RW,
                  doc="Follow the session in SESSION_CFG*; 0: the first well-formed packet's."),
            Field("hold", 1, 1, RW,
                  doc="While 1 no packet is arbitrated (inputs back up) and the stream state "
                      "is cleared; back to 0 starts a fresh session."),
        ), doc="Sequencer control."),
        Register("STATUS", 0x008, (
            Field("session_valid", 0, 1, RO, doc="A session is followed (SESSION* valid)."),
            Field("started", 1, 1, RO, doc="A data packet set next_seq."),
            Field("end_of_session", 2, 1, RO, doc="An end-of-session packet arrived."),
            Field("feed_a_stale", 4, 1, RO, doc="Feed A jumped and is not contiguous again."),
            Field("feed_b_stale", 5, 1, RO, doc="Feed B jumped and is not contiguous again."),
            Field("stream_stale", 8, 1, W1C,
                  doc="Set by every gap; the output's stale flag. Write 1 to clear."),
        ), doc="Stream state."),
        Register("EVENT_STATUS", 0x00C, (
            Field("event_valid", 0, 1, RO, doc="EVENT_* hold the oldest event."),
            Field("event_level", 8, 8, RO, doc="Events queued, the shown one included."),
            Field("event_ack", 24, 8, RW,
                  doc="Events consumed so far, mod 256: writing one more pops the shown event."),
        ), doc="Event FIFO: read the EVENT_* registers, then write event_ack + 1."),
    ]
    for name, offset, access, what in (("session_cfg", 0x010, RW, "Session to follow when "
                                        "session_from_register is 1."),
                                       ("session", 0x020, RO, "The session followed.")):
        for i in range(3):
            lsb, width = (16, 16) if i == 2 else (0, 32)
            registers.append(Register(f"{name.upper()}{i}", offset + 4 * i, (
                Field(f"{name}{i}", lsb, width, access,
                      doc=f"Session bytes {4 * i}..{min(4 * i + 3, 9)}, first in the top bits."),),
                doc=what))
    for name, offset, what in (("next_seq_lo", 0x030, "Bits 31:0"), ("next_seq_hi", 0x034, "Bits 63:32")):
        registers.append(Register(name.upper(), offset, (
            Field(name, 0, 32, RO, doc=f"{what} of the next expected sequence number."),),
            doc="Arbitration state."))
    registers.append(Register("EVENT_KIND", 0x040, (
        Field("event_kind", 0, 4, RO, doc="1 gap (A expected, B received), 2 feed stale "
              "(A expectation, B sequence number), 3 feed recovered (A), 4 end of session (A)."),
        Field("event_feed", 8, 1, RO, doc="Feed whose packet caused it (0 A, 1 B)."),
    ), doc="Oldest event: what and where."))
    for name, offset in (("event_a_lo", 0x044), ("event_a_hi", 0x048), ("event_b_lo", 0x04C),
                         ("event_b_hi", 0x050)):
        registers.append(Register(name.upper(), offset, (
            Field(name, 0, 32, RO, doc="Half of the oldest event's 64-bit value."),),
            doc="Oldest event: values."))
    for i, name in enumerate(mold_seq.STREAM_COUNTERS):
        registers.append(Register(f"COUNT_{name.upper()}", 0x080 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO, doc=stream_docs[name]),),
            doc="32-bit counter; wraps."))
    for name, offset, what in (("missing_lo", 0x0A0, "Bits 31:0"), ("missing_hi", 0x0A4, "Bits 63:32")):
        registers.append(Register(name.upper(), offset, (
            Field(name, 0, 32, RO, doc=f"{what} of the sum of (received - expected) over gaps."),),
            doc="64-bit counter of missing messages; read LO then HI while idle."))
    for f, feed in enumerate(mold_seq.FEEDS):
        for i, name in enumerate(mold_seq.FEED_COUNTERS):
            registers.append(Register(f"FEED_{feed.upper()}_{name.upper()}", 0x100 + 0x80 * f + 4 * i, (
                Field(f"{feed}_{name}", 0, 32, RO,
                      doc=feed_docs.get(name, f"Packets dropped as malformed: {name}.")),),
                doc=f"Feed {feed.upper()}: 32-bit counter; wraps."))
    return Block("mold_seq", 0x2000, WINDOW_BYTES, tuple(registers),
                 doc="MoldUDP64 sequencer: A/B arbitration of one session, gap events, "
                     "per-feed counters and malformed-packet reasons.")


MOLD_SEQ = _mold_seq_block()


def _order_book_block() -> Block:
    from rtl.order_book import model as order_book

    config = order_book.BookConfig()
    registers = [
        Register("INFO", 0x000, (
            Field("slots", 0, 16, RO, config.slots, const=True, doc="Book slots (tracked locates)."),
            Field("levels", 16, 8, RO, config.levels, const=True,
                  doc="Price levels tracked per slot and side."),
            Field("order_ways", 24, 8, RO, config.order_ways, const=True,
                  doc="Ways per order-table set."),
        ), doc="Build parameters of the block."),
        Register("ORDER_SETS", 0x004, (
            Field("order_sets", 0, 32, RO, config.order_sets, const=True,
                  doc="Order-table sets; capacity is order_sets x order_ways orders."),),
            doc="Build parameter: order-table sets."),
        Register("CONTROL", 0x008, (
            Field("auto_assign", 0, 1, RW, 1,
                  doc="A Stock Directory event of a locate without a slot takes the lowest free slot."),
            Field("refill", 1, 1, RW, 1,
                  doc="Rebuild a side from the order table when its top levels are not all tracked "
                      "(stalls events for a table scan); off: flag the slot degraded instead."),
            Field("stale", 2, 1, RW, 0, doc="Set FLAG_STALE in every book update (sequence gap upstream)."),
        ), doc="Behaviour switches."),
        Register("COMMAND", 0x00C, (
            Field("cmd_locate", 0, 16, RW, doc="Stock locate for ASSIGN."),
            Field("cmd_slot", 16, 8, RW, doc="Slot the command acts on; also the slot SLOT_INFO shows."),
            Field("cmd_op", 24, 3, RW,
                  doc="0 none, 1 assign slot to locate, 2 release slot, 3 clear the slot's lost "
                      "state, 4 reset the whole book."),
            Field("cmd_toggle", 31, 1, RW,
                  doc="The command runs once each time this bit changes; poll STATUS.busy."),
        ), doc="Host commands on the slot table."),
        Register("STATUS", 0x010, (
            Field("busy", 0, 1, RO, doc="A command, table sweep or the start-up clear is running."),
            Field("slots_used", 16, 9, RO, doc="Slots assigned."),
        ), doc="Block state."),
        Register("SLOT_INFO", 0x014, (
            Field("info_locate", 0, 16, RO, doc="Locate of slot cmd_slot."),
            Field("info_valid", 16, 1, RO, doc="The slot is assigned."),
            Field("info_directory", 17, 1, RO, doc="Its Stock Directory event was seen."),
            Field("info_not_trading", 18, 1, RO, doc="Its last trading state is not T."),
            Field("info_lost", 19, 1, RO, doc="Sticky: an order of it may be missing."),
            Field("info_degraded", 20, 1, RO, doc="Its records carry FLAG_DEGRADED."),
        ), doc="State of slot cmd_slot."),
        Register("SLOT_SYMBOL_HI", 0x018, (
            Field("info_symbol_hi", 0, 32, RO, doc="First four symbol bytes (first in bits 31:24)."),),
            doc="Symbol of slot cmd_slot from its Stock Directory event."),
        Register("SLOT_SYMBOL_LO", 0x01C, (
            Field("info_symbol_lo", 0, 32, RO, doc="Last four symbol bytes."),),
            doc="Symbol of slot cmd_slot, continued."),
        Register("OCCUPANCY", 0x020, (
            Field("occupancy", 0, 32, RO, doc="Orders in the order table."),),
            doc="Order-table occupancy."),
        Register("OCCUPANCY_HIGH", 0x024, (
            Field("occupancy_high", 0, 32, RO, doc="Highest occupancy since reset."),),
            doc="Order-table occupancy high-water mark."),
    ]
    for k in range((config.slots + 31) // 32):
        width = min(32, config.slots - 32 * k)
        registers.append(Register(f"DEGRADED{k}", 0x040 + 4 * k, (
            Field(f"degraded{k}", 0, width, RO,
                  doc=f"Bit i: slot {32 * k}+i currently degraded (FLAG_DEGRADED)."),),
            doc="Degraded slots."))
    counter_docs = {
        "ev_other": "Events of an unknown kind (ignored).",
        "untracked": "Events whose locate or order has no slot (ignored).",
        "book_updates": "BOOK_UPDATE records sent.",
        "trades": "TRADE records sent.",
        "duplicate_reference": "Adds (or replace's new side) reusing a live reference; not booked.",
        "zero_shares": "Adds or replaces with zero shares; not booked.",
        "over_execution": "Executions of more than the order's shares (clamped).",
        "over_cancel": "Cancels of more than the order's shares (clamped).",
        "no_free_slot": "Directory events that found no free slot.",
        "bad_command": "Host commands refused (bad op or slot, locate held by another slot).",
        "refills": "Order-table scans that rebuilt a side's levels.",
        "degraded_order_table_full": "Adds dropped because their set was full (slot lost).",
        "degraded_unknown_reference": "Order events for a tracked locate with an unknown "
                                      "reference (slot lost).",
        "degraded_level_missing": "Orders whose tracked level was missing (slot lost).",
        "degraded_depth": "Times a slot became depth degraded (refill off).",
    }
    for i, name in enumerate(order_book.COUNTERS):
        registers.append(Register(f"COUNT_{name.upper()}", 0x080 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO,
                  doc=counter_docs.get(name, f"Events of kind {name[3:]}.")),),
            doc="32-bit counter; wraps."))
    return Block("order_book", 0x4000, WINDOW_BYTES, tuple(registers),
                 doc="Order book: slots of tracked locates, order table, price levels, "
                     "book-update and trade records.")


ORDER_BOOK = _order_book_block()

REGISTER_MAP: tuple[Block, ...] = (SYSTEM, FRAME_FILTER, ITCH_DECODER, MOLD_SEQ,
                                    ORDER_BOOK, FRAME_FILTER_B)
validate(REGISTER_MAP)

MAP_VERSION = map_version(REGISTER_MAP)


def block(name: str) -> Block:
    for blk in REGISTER_MAP:
        if blk.name == name:
            return blk
    raise KeyError(f"no block {name} in the register map")


def build_constants(build_id: int) -> dict[str, int]:
    """Values of the constant fields that are only known when building."""
    return {"build_id": build_id, "map_version": MAP_VERSION}
