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
        "events_lost": "Events that found the event FIFO full (dropped).",
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
            Field("event_stream", 2, 1, RW, 1,
                  doc="Events leave as feed event records on m_feed_event; 0: they wait in "
                      "the event FIFO for the EVENT_* registers."),
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
            Field("event_valid", 0, 1, RO,
                  doc="EVENT_* hold the oldest event (never while CONTROL.event_stream is 1)."),
            Field("event_level", 8, 8, RO, doc="Events queued, the shown one included."),
            Field("event_ack", 24, 8, RW,
                  doc="Events consumed so far, mod 256: writing one more pops the shown event."),
        ), doc="Event FIFO while CONTROL.event_stream is 0: read the EVENT_* registers, "
               "then write event_ack + 1."),
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
        Field("event_lost_before", 12, 1, RO,
              doc="Events were dropped (FIFO full) just before this one."),
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
        "feed_events_lost": "Degraded/restored feed event records dropped because the event "
                            "stream was backed up.",
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


def _quoter_block() -> Block:
    from rtl.quoter import model as quoter

    counter_docs = {
        "theos": "Theo words taken.",
        "bad_option": "Theo words of an option outside the table (dropped).",
        "requotes": "Quote words flagged requote.",
    }
    for side in ("bid", "ask"):
        counter_docs.update({
            f"{side}_no_price": f"Theos whose {side} had no valid price (range, no tick band).",
            f"{side}_bad_tick": f"Theos whose {side}'s tick band has an inconsistent reciprocal.",
            f"{side}_below_edge": f"Theos whose {side} was under the minimum edge.",
            f"{side}_zero_size": f"Theos whose {side} size register is 0.",
        })
    registers = [
        Register("INFO", 0x000, (
            Field("options", 0, 16, RO, quoter.OPTIONS, const=True,
                  doc="Entries of the position table (option ids 0..options-1)."),
            Field("tick_bands", 16, 8, RO, quoter.TICK_BANDS, const=True,
                  doc="Entries of the tick table."),
        ), doc="Build parameters of the block."),
        Register("CONTROL", 0x004, (
            Field("requote_all", 0, 1, RW,
                  doc="Each change of this bit makes every option's next theo a requote "
                      "(after changing sizes, spreads or ticks)."),),
            doc="Quoter control."),
        Register("HALF_SPREAD", 0x008, (
            Field("half_spread", 0, 32, RW, doc="Half-spread, price4."),), doc="Quote width."),
        Register("SKEW", 0x00C, (
            Field("skew", 0, 32, RW,
                  doc="Signed: price4/65536 taken off both sides per contract of position."),),
            doc="Position skew."),
        Register("BID_SIZE", 0x010, (
            Field("bid_size", 0, 32, RW, doc="Bid size, contracts; 0 quotes no bid."),),
            doc="Bid size."),
        Register("ASK_SIZE", 0x014, (
            Field("ask_size", 0, 32, RW, doc="Ask size, contracts; 0 quotes no ask."),),
            doc="Ask size."),
        Register("MIN_EDGE", 0x018, (
            Field("min_edge", 0, 32, RW,
                  doc="A side whose rounded price is nearer theo than this (price4) is not "
                      "quoted."),), doc="Minimum edge."),
        Register("REQUOTE_THRESHOLD", 0x01C, (
            Field("requote_threshold", 0, 32, RW,
                  doc="Price move (price4) against the last requote that requotes; 0 = any."),),
            doc="Requote threshold."),
        Register("TICK_STATUS", 0x020, (
            Field("tick_consistent", 0, quoter.TICK_BANDS, RO,
                  doc="Bit i: tick entry i is used and its reciprocal is (2**32-1) // size."),),
            doc="Tick table check."),
    ]
    for i, band in enumerate(quoter.DEFAULT_TICKS):
        base = 0x040 + 0x10 * i
        registers += [
            Register(f"TICK{i}_START", base, (
                Field(f"tick{i}_start", 0, 32, RW, band.start,
                      doc="Lowest price4 of the band."),), doc=f"Tick band {i}: start."),
            Register(f"TICK{i}_SIZE", base + 4, (
                Field(f"tick{i}_size", 0, 16, RW, band.size,
                      doc="Tick, price4; 0 = entry unused."),), doc=f"Tick band {i}: tick."),
            Register(f"TICK{i}_RECIP", base + 8, (
                Field(f"tick{i}_recip", 0, 32, RW, band.recip,
                      doc="(2**32 - 1) // size: the divider's reciprocal."),),
                doc=f"Tick band {i}: reciprocal."),
        ]
    for i, name in enumerate(quoter.COUNTERS):
        registers.append(Register(f"COUNT_{name.upper()}", 0x080 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO, doc=counter_docs[name]),),
            doc="32-bit counter; wraps."))
    for n in range(quoter.OPTIONS):
        registers.append(Register(f"POSITION{n}", 0x400 + 4 * n, (
            Field(f"position{n}", 0, 32, RW, doc="Signed position, contracts."),),
            doc=f"Position of option {n} (skews its quotes)."))
    return Block("quoter", 0x8000, WINDOW_BYTES, tuple(registers),
                 doc="Quoter: spread, skew, sizes, minimum edge, tick table, requote "
                     "threshold, per-option positions, side counters.")


QUOTER = _quoter_block()


def _risk_gate_block() -> Block:
    from rtl.risk_gate import model as gate

    counter_docs = {
        "words": "Quote words taken.",
        "quotes": "QUOTE records sent.",
        "cancel_kill": "CANCEL records sent by the kill bit.",
        "cancel_book": "CANCEL records sent for a bad book (stale, degraded ...).",
        "cancel_withdrawn": "CANCEL records sent because no side was left.",
        "book_pulls": "Underlyings pulled for a bad book.",
        "book_recoveries": "Pulled underlyings recovered by a good book.",
        "bad_option": "Words of an option outside the table (dropped).",
        "killed": "Updates refused: kill bit set.",
        "stale": "Updates refused: the book is stale.",
        "degraded": "Updates refused: the book is degraded.",
        "book_flag": "Updates refused: another pull_mask book flag.",
        "rate_limited": "Updates refused: rate_count updates already in the window.",
        "unknown_underlying": "Sides removed: underlying not in the table.",
        "side_disabled": "Sides removed: the side's enable is off.",
        "through_theo": "Sides removed: through theo by more than through_limit.",
        "outside_range": "Sides removed: price outside [min_price, max_price].",
    }
    registers = [
        Register("INFO", 0x000, (
            Field("gate_options", 0, 16, RO, gate.OPTIONS, const=True,
                  doc="Options the gate tracks (option ids 0..gate_options-1)."),
            Field("underlying_entries", 16, 8, RO, gate.UNDERLYINGS, const=True,
                  doc="Entries of the underlying table."),
        ), doc="Build parameters of the block."),
        Register("CONTROL", 0x004, (
            Field("kill", 0, 1, RW, 1,
                  doc="Set: pull every live quote and refuse all updates. Set at reset."),
            Field("pull_mask", 8, 8, RW, gate.DEFAULT_PULL_MASK,
                  doc="Book FLAG_* bits that pull an underlying (stale, degraded by default)."),
        ), doc="Kill and pull conditions."),
        Register("STATUS", 0x008, (
            Field("busy", 0, 1, RO, doc="Pulls are being sent."),
            Field("live_options", 8, 16, RO, doc="Options with a quote resting at the host."),
        ), doc="Gate state."),
        Register("PULLED", 0x00C, (
            Field("pulled", 0, gate.UNDERLYINGS, RO,
                  doc="Bit i: underlying entry i is pulled for a bad book."),),
            doc="Pulled underlyings."),
        Register("THROUGH_LIMIT", 0x010, (
            Field("through_limit", 0, 32, RW,
                  doc="A bid above theo or an ask below theo by more than this (price4) "
                      "is removed."),), doc="Price band around theo."),
        Register("MIN_PRICE", 0x014, (
            Field("min_price", 0, 32, RW, 1, doc="Lowest price4 a side may have."),),
            doc="Price band: floor."),
        Register("MAX_PRICE", 0x018, (
            Field("max_price", 0, 32, RW, gate.GateSettings().max_price,
                  doc="Highest price4 a side may have."),), doc="Price band: ceiling."),
        Register("RATE_COUNT", 0x01C, (
            Field("rate_count", 0, 8, RW, gate.DEFAULT_RATE_COUNT,
                  doc="Quote updates allowed per option per window."),),
            doc="Rate limit: count."),
        Register("RATE_WINDOW", 0x020, (
            Field("rate_window", 0, 32, RW, gate.DEFAULT_RATE_WINDOW,
                  doc="Window length in cycles of the triggers' ingress stamps."),),
            doc="Rate limit: window."),
    ]
    for i, name in enumerate(gate.COUNTERS):
        registers.append(Register(f"COUNT_{name.upper()}", 0x080 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO, doc=counter_docs[name]),),
            doc="32-bit counter; wraps."))
    for n in range(gate.UNDERLYINGS):
        registers.append(Register(f"UNDERLYING{n}", 0x100 + 4 * n, (
            Field(f"und{n}_locate", 0, 16, RW, doc="ITCH stock locate."),
            Field(f"und{n}_bid_enable", 16, 1, RW, doc="Bids of its options may go out."),
            Field(f"und{n}_ask_enable", 17, 1, RW, doc="Asks of its options may go out."),
            Field(f"und{n}_valid", 31, 1, RW, doc="Entry takes part in the lookup."),
        ), doc=f"Underlying table entry {n}."))
    return Block("risk_gate", 0x9000, WINDOW_BYTES, tuple(registers),
                 doc="Risk gate: kill, per-underlying side enables, price band, rate limit, "
                     "pulls on a bad book, refusals counted by reason.")


RISK_GATE = _risk_gate_block()


def _pricer_chain_block() -> Block:
    from rtl.pricer_chain import model as chain

    config = chain.ChainConfig()
    counter_docs = {
        "updates": "Well-formed book-update records.",
        "trades": "Well-formed trade records (ignored).",
        "malformed": "Records of the wrong length or with a frame error (dropped).",
        "untracked": "Updates of a locate in no enabled entry with rows.",
        "one_sided": "Updates without a best bid or a best ask.",
        "out_of_range": "Updates whose reference price is outside the pricer's spot range.",
        "unchanged": "Updates with the last accepted price and flags of their underlying.",
        "accepted": "Updates whose price was queued for a chain walk.",
        "coalesced": "Accepted prices replaced by a newer one before their walk (never priced).",
        "walks": "Chain walks of live prices.",
        "options": "Theo words sent.",
        "scenario_walks": "Chain walks of scenario runs, skipped ones included.",
        "scenario_options": "Options priced in scenario runs.",
        "scenario_skipped": "Scenario walks skipped: no accepted price, or S' out of range.",
    }
    money = ("log_offset", "inv_vol", "total_vol", "sqrt_t", "half_vol_rate", "carry_disc",
             "strike_disc", "carry_rate", "rate_strike_disc")
    registers = [
        Register("INFO", 0x000, (
            Field("info_options", 0, 16, RO, config.options, const=True,
                  doc="Rows of the parameter table."),
            Field("info_lanes", 16, 8, RO, config.lanes, const=True,
                  doc="Datapath lanes (theo ports); row r goes out on lane r % lanes."),
        ), doc="Build parameters of the block."),
        Register("INFO2", 0x004, (
            Field("info_underlyings", 0, 9, RO, config.underlyings, const=True,
                  doc="Entries of the underlying table."),
            Field("info_scenarios", 16, 9, RO, config.scenarios, const=True,
                  doc="Rows of the scenario table."),
        ), doc="Build parameters of the block."),
        Register("CONTROL", 0x008, (
            Field("microprice", 0, 1, RW,
                  doc="Reference price: 0 mid, 1 microprice (size weighted); read per record."),),
            doc="Pricing control."),
        Register("STATUS", 0x00C, (
            Field("walking", 0, 1, RO, doc="A chain walk is issuing options."),
            Field("pending", 8, 9, RO, doc="Underlyings waiting for a walk."),
        ), doc="Walker state."),
        Register("DROP_STATUS", 0x010, tuple(
            Field(f"seen_{name}", bit, 1, W1C, doc=f"Sticky: {name.replace('_', ' ')} seen.")
            for bit, name in enumerate(chain.STICKY)),
            doc="Sticky: losses and refusals since software last cleared the bits "
                "(bad_config: a table write or scenario start refused)."),
        Register("CYCLE", 0x014, (
            Field("cycle", 0, 32, RO, doc="Free-running cycle counter (the theo words' ingress_cycle)."),),
            doc="Cycle counter; wraps."),
        Register("ROW_WRITE", 0x020, (
            Field("row_index", 0, 16, RW, doc="Parameter-table row to write."),
            Field("row_is_put", 16, 1, RW, doc="1 put, 0 call."),
            Field("row_commit", 31, 1, RW,
                  doc="Each change writes the ROW_* words and row_is_put to row row_index."),
        ), doc="Parameter-table write: set the ROW_* words, then this register."),
        Register("UL_RANGE", 0x030, (
            Field("ul_first", 0, 16, RW, doc="First parameter-table row of the underlying."),
            Field("ul_count", 16, 16, RW, doc="Rows of the underlying (0: none)."),
        ), doc="Underlying-table write: the entry's rows."),
        Register("UL_WRITE", 0x034, (
            Field("ul_locate", 0, 16, RW, doc="ITCH stock locate of the underlying."),
            Field("ul_index", 16, 8, RW, doc="Entry to write; also the entry UL_INFO* shows."),
            Field("ul_enable", 24, 1, RW, doc="Entry takes part in the lookup."),
            Field("ul_commit", 31, 1, RW,
                  doc="Each change writes entry ul_index (refused when its rows leave the table)."),
        ), doc="Underlying-table write: set UL_RANGE, then this register."),
        Register("UL_INFO", 0x038, (
            Field("info_locate", 0, 16, RO, doc="Locate of entry ul_index."),
            Field("info_enabled", 16, 1, RO, doc="The entry is enabled."),
            Field("info_has_price", 17, 1, RO, doc="It has an accepted price."),
            Field("info_pending", 18, 1, RO, doc="It waits for a walk."),
        ), doc="State of entry ul_index."),
        Register("UL_INFO_RANGE", 0x03C, (
            Field("info_first", 0, 16, RO, doc="First row of entry ul_index."),
            Field("info_count", 16, 16, RO, doc="Rows of entry ul_index."),
        ), doc="Rows of entry ul_index."),
        Register("UL_SPOT_LO", 0x040, (
            Field("info_spot_lo", 0, 32, RO, doc="Bits 31:0 of its last accepted price (MONEY)."),),
            doc="Last accepted reference price of entry ul_index."),
        Register("UL_SPOT_HI", 0x044, (
            Field("info_spot_hi", 0, 32, RO, doc="Bits 63:32."),),
            doc="Last accepted reference price of entry ul_index, continued."),
        Register("POS_VALUE", 0x050, (
            Field("pos_value", 0, 32, RW, doc="Signed contracts held in the option (scenario sums)."),),
            doc="Position-table write: the value."),
        Register("POS_WRITE", 0x054, (
            Field("pos_index", 0, 16, RW, doc="Row whose position to write."),
            Field("pos_commit", 31, 1, RW, doc="Each change writes pos_value to row pos_index."),
        ), doc="Position-table write: set POS_VALUE, then this register."),
        Register("SCN_WRITE", 0x060, (
            Field("scn_index", 0, 8, RW, doc="Scenario row to write."),
            Field("scn_commit", 31, 1, RW, doc="Each change writes the SCN_* words to row scn_index."),
        ), doc="Scenario-table write: set the SCN_* words, then this register."),
        Register("SCN_CONTROL", 0x064, (
            Field("scn_count", 0, 9, RW, doc="Scenarios of a run: rows 0 .. scn_count - 1."),
            Field("scn_start", 31, 1, RW,
                  doc="Each change starts a run (refused while one runs, for scn_count 0 or "
                      "above the table, or with no entry with rows)."),
        ), doc="Scenario run control."),
        Register("SCN_STATUS", 0x068, (
            Field("scn_running", 0, 1, RO, doc="A run is in progress."),
            Field("scn_done", 8, 9, RO, doc="Scenarios of the current or last run finished."),
        ), doc="Scenario run state."),
        Register("RESULT_SEL", 0x06C, (
            Field("result_sel", 0, 8, RW, doc="Scenario whose sums RESULT_* show."),),
            doc="Scenario result select."),
        Register("RESULT_INFO", 0x070, (
            Field("result_options", 0, 16, RO, doc="Options priced in the scenario."),
            Field("result_skipped", 16, 9, RO, doc="Walks skipped in the scenario."),
        ), doc="Scenario result_sel: counts."),
    ]
    for k, name in enumerate(money):
        for half, lsb_doc in ((0, "31:0"), (1, "63:32")):
            part = ("lo", "hi")[half]
            registers.append(Register(f"ROW_{name.upper()}_{part.upper()}", 0x080 + 8 * k + 4 * half, (
                Field(f"row_{name}_{part}", 0, 32, RW,
                      doc=f"Bits {lsb_doc} of the row's {name} (raw, rtl.pricer.formats)."),),
                doc="Parameter-table staging word."))
    for k, name in enumerate(chain.SCENARIO_FIELDS):
        for half, lsb_doc in ((0, "31:0"), (1, "63:32")):
            part = ("lo", "hi")[half]
            registers.append(Register(f"SCN_{name.upper()}_{part.upper()}", 0x0E0 + 8 * k + 4 * half, (
                Field(f"scn_{name}_{part}", 0, 32, RW,
                      doc=f"Bits {lsb_doc} of the scenario's {name} (DISC raw)."),),
                doc="Scenario-table staging word."))
    for k, name in enumerate(chain.RESULTS):
        for w in range(chain.RESULT_BITS // 32):
            registers.append(Register(f"RESULT_{name.upper()}_{w}", 0x100 + 0x10 * k + 4 * w, (
                Field(f"result_{name}_{w}", 0, 32, RO,
                      doc=f"Bits {32 * w + 31}:{32 * w} of the 128-bit sum (MONEY raw)."),),
                doc=f"Scenario result_sel: sum of position x {name}."))
    for i, name in enumerate(chain.COUNTERS):
        registers.append(Register(f"COUNT_{name.upper()}", 0x200 + 4 * i, (
            Field(f"count_{name}", 0, 32, RO, doc=counter_docs[name]),),
            doc="32-bit counter; wraps."))
    return Block("pricer_chain", 0x6000, WINDOW_BYTES, tuple(registers),
                 doc="Chain pricer: parameter, underlying, position and scenario tables, "
                     "reference-price mode, verdict counters, scenario results.")


PRICER_CHAIN = _pricer_chain_block()


REGISTER_MAP: tuple[Block, ...] = (SYSTEM, FRAME_FILTER, ITCH_DECODER, MOLD_SEQ,
                                    ORDER_BOOK, FRAME_FILTER_B,
                                    QUOTER, RISK_GATE, PRICER_CHAIN)
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
