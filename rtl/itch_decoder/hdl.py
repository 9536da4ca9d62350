"""ITCH 5.0 decoder in MyHDL: one message per packet in, order-book events out.

Behaviour is :mod:`rtl.itch_decoder.model`; this is how the fabric gets it.

The type byte of a message's first beat indexes small ROMs (the type's
length in the specification, its event kind); those and the stock locate are
registered with the first beat.  Bytes that some event field needs are kept
as later beats arrive, but only where the message goes on past their beat:
a byte in the last beat of every type that uses it is read straight off the
input.  So the event is assembled from the kept bytes and the last beat in
the cycle that beat is accepted and registered at its end: the event is valid
:data:`LATENCY_CYCLES` after the input beat holding the last byte, with the
output free.  Which byte feeds which event field comes from the golden
layouts through :func:`rtl.itch_decoder.model.event_spans`; where a field has
several sources (a price at byte 31 for U, 32 for A), a chain of 2:1 muxes
selected by the registered kind picks one and leaves 0 for kinds without it.

The subscription table is matched against the registered locate and the
per-entry hits are registered again, so the match is ready two beats into a
message; every type it applies to is at least three beats long (checked at
elaboration), and system events, which skip the table, are two.  A table
write takes effect for messages whose last beat comes two or more cycles
after it.

The output is a valid/ready register with a skid register behind it, so input
``tready`` is a register too: it falls only while the skid register holds an
event, and never because of ``m_event.ready`` in the same cycle.  With the
output always ready the input is never held off, and messages are taken back
to back at one beat per cycle: two cycles per 12-byte message.
"""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always, always_comb, always_seq, block, concat, intbv

from host.protocols.itch50 import MESSAGE_SIZES
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_BYTES, DATA_WIDTH, KEEP_WIDTH, keep_counter
from rtl.common.events import (EV_ADD, EV_NONE, EV_SYSTEM, EV_TRADE, EVENT_BITS, EVENT_FIELDS,
                               KIND_OF_TYPE, EventPort)
from rtl.common.logic import counter
from rtl.common.message_stream import SIDEBAND_BITS, ItchStream, sideband_slices
from rtl.itch_decoder.model import (DROP_REASONS, LOCATE_BITS, SIDE_BUY, SIDE_SELL, STICKY,
                                    SUBSCRIPTION_ENTRIES, SUBSCRIPTION_EXEMPT, TYPE_COUNTERS,
                                    event_spans)
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import ITCH_DECODER

# Input beat holding a message's last byte accepted -> event valid, output free.
LATENCY_CYCLES = 1

# The beat counter saturates: a message of 16 beats or more is longer than
# every type anyway.
BEAT_BITS = 4
LENGTH_BITS = BEAT_BITS + 4
KIND_BITS = 4
SPEC_LENGTH_BITS = max(MESSAGE_SIZES.values()).bit_length()
# Beats a message has passed before the subscription match is registered.
SUBSCRIPTION_BEATS = 2

# Verdict codes, one per model verdict.
R_EVENT, R_SKIPPED, R_BAD_SIDE, R_UNSUBSCRIBED, R_UNKNOWN_TYPE, R_TRUNCATED, \
    R_LENGTH_MISMATCH = range(7)
REASON_CODE = {"event": R_EVENT, "skipped": R_SKIPPED, "bad_side": R_BAD_SIDE,
               "unsubscribed": R_UNSUBSCRIBED, "unknown_type": R_UNKNOWN_TYPE,
               "truncated": R_TRUNCATED, "length_mismatch": R_LENGTH_MISMATCH}
REASON_BITS = 3

# Type byte -> spec length (0: not an ITCH type), and -> event kind.
SPEC_LENGTH_ROM = tuple(MESSAGE_SIZES.get(chr(code), 0) for code in range(256))
KIND_ROM = tuple(KIND_OF_TYPE.get(chr(code), EV_NONE) for code in range(256))



def _last_beat(type_code: str) -> int:
    return (MESSAGE_SIZES[type_code] - 1) // DATA_BYTES


@block
def _rom_lookup(index, rom, out):
    @always_comb
    def lookup():
        out.next = rom[int(index)]

    return lookup


@block
def _keep_byte(clk, accept, beat, lane, kept, beat_index):
    @always(clk.posedge)
    def keep():
        if accept and beat == beat_index:
            kept.next = lane

    return keep


@block
def _view_byte(beat, lane, kept, out, beat_index):
    """The byte as of the current beat: off the input in its own beat, kept after."""

    @always_comb
    def choose():
        if beat == beat_index:
            out.next = lane
        else:
            out.next = kept

    return choose


@block
def _copy(source, out):
    @always_comb
    def pass_through():
        out.next = source

    return pass_through


@block
def _first_source(select, source, out):
    @always_comb
    def pick():
        if select:
            out.next = source
        else:
            out.next = 0

    return pick


@block
def _next_source(select, source, previous, out):
    @always_comb
    def pick():
        if select:
            out.next = source
        else:
            out.next = previous

    return pick


@block
def _entry_hit(clk, rst, locate, entry_locate, entry_enable, hit):
    @always_seq(clk.posedge, reset=rst)
    def compare():
        hit.next = entry_enable and locate == entry_locate

    return compare


@block
def _reason_pulse(end_fire, reason, code, pulse):
    @always_comb
    def compare():
        pulse.next = end_fire and reason == code

    return compare


@block
def _type_pulse(end_fire, well_formed, type_reg, code, pulse):
    @always_comb
    def compare():
        pulse.next = end_fire and well_formed and type_reg == code

    return compare


@block
def _flag_pulse(end_fire, flag, pulse):
    @always_comb
    def compare():
        pulse.next = end_fire and flag

    return compare


@block
def itch_decoder(clk, rst, s_axis: ItchStream, m_event: EventPort, s_axil: AxiLite):
    """The block's top level: ``s_axis`` messages in, ``m_event`` events out,
    registers on ``s_axil``."""
    ports = RegisterPorts(ITCH_DECODER)
    registers = regfile(clk, rst, s_axil, ports, ITCH_DECODER)
    for type_code in KIND_OF_TYPE:
        if type_code not in SUBSCRIPTION_EXEMPT and _last_beat(type_code) < SUBSCRIPTION_BEATS:
            raise ValueError(f"'{type_code}' ends before its subscription match is ready")

    # Local copies of the input: the converter loses slices taken of an
    # interface's signals.
    tdata = Signal(intbv(0)[DATA_WIDTH:])
    tuser = Signal(intbv(0)[SIDEBAND_BITS:])
    # A dict, not a list: the converter would declare a list of signals as a memory.
    lanes = {lane: tdata(8 * lane + 8, 8 * lane) for lane in range(DATA_BYTES)}
    accept = Signal(bool(0))
    keep_bytes = Signal(intbv(0)[4:])
    beat = Signal(intbv(0)[BEAT_BITS:])

    @always_comb
    def handshake():
        tdata.next = s_axis.tdata
        tuser.next = s_axis.tuser
        accept.next = s_axis.tvalid and s_axis.tready

    count_keep = keep_counter(s_axis.tkeep, keep_bytes)

    # ---- per-message state from the first beat --------------------------
    type_in = lanes[0]
    spec_length_in = Signal(intbv(0)[SPEC_LENGTH_BITS:])
    kind_in = Signal(intbv(0)[KIND_BITS:])
    lookups = [_rom_lookup(type_in, SPEC_LENGTH_ROM, spec_length_in),
               _rom_lookup(type_in, KIND_ROM, kind_in)]
    type_reg = Signal(intbv(0)[8:])
    spec_length_reg = Signal(intbv(0)[SPEC_LENGTH_BITS:])
    kind_reg = Signal(intbv(0)[KIND_BITS:])
    locate_reg = Signal(intbv(0)[LOCATE_BITS:])

    @always_seq(clk.posedge, reset=rst)
    def message_state():
        if accept:
            if s_axis.tlast:
                beat.next = 0
            elif beat != (1 << BEAT_BITS) - 1:
                beat.next = beat + 1
            if beat == 0:
                type_reg.next = type_in
                spec_length_reg.next = spec_length_in
                kind_reg.next = kind_in
                locate_reg.next = concat(tdata[16:8], tdata[24:16])

    # ---- bytes of the message as of the current beat ---------------------
    event_types = list(KIND_OF_TYPE)
    spans = {t: event_spans(t) for t in event_types}
    users: dict[int, set[str]] = {}
    for t in event_types:
        for name, (offset, size) in spans[t].items():
            if name == "stock_locate":
                continue  # from locate_reg
            for k in range(offset, offset + size):
                users.setdefault(k, set()).add(t)
    view = {}
    keepers = []
    for k in sorted(users):
        beat_index, lane = divmod(k, DATA_BYTES)
        if all(_last_beat(t) == beat_index for t in users[k]):
            view[k] = lanes[lane]
            continue
        kept = Signal(intbv(0)[8:])
        view[k] = Signal(intbv(0)[8:])
        keepers.append(_keep_byte(clk, accept, beat, lanes[lane], kept, beat_index))
        keepers.append(_view_byte(beat, lanes[lane], kept, view[k], beat_index))

    def span_signal(offset: int, size: int):
        if size == 1:
            return view[offset]
        return ConcatSignal(*[view[k] for k in range(offset, offset + size)])

    # ---- event fields: per field, its sources chained by registered kind ----
    widths = dict(EVENT_FIELDS)
    widths["side"] = 8  # the buy/sell byte; the event bit is derived below
    selectors = []
    fields = {}
    for name in ("side", "price", "shares", "order_ref", "new_order_ref", "match_number",
                 "timestamp", "aux"):
        sources: dict[tuple[int, int], list[str]] = {}
        for t in event_types:
            if name in spans[t]:
                sources.setdefault(spans[t][name], []).append(t)
        out = Signal(intbv(0)[widths[name]:])
        fields[name] = out
        if len(sources) == 1 and len(next(iter(sources.values()))) == len(event_types):
            (offset, size), = sources
            if 8 * size != widths[name]:
                raise ValueError(f"{name}: {size} bytes for a {widths[name]}-bit field")
            selectors.append(_copy(span_signal(offset, size), out))
            continue
        previous = None
        for (offset, size), types in sorted(sources.items()):
            # Selected by kind, a 16-entry table rather than a 256-entry one:
            # types of one kind (A and F) share their spans.
            kinds = {KIND_OF_TYPE[t] for t in types}
            if any(KIND_OF_TYPE[t] in kinds and t not in types for t in event_types):
                raise ValueError(f"{name}: types of one kind read it from different bytes")
            select = Signal(bool(0))
            rom = tuple(int(kind in kinds) for kind in range(1 << KIND_BITS))
            selectors.append(_rom_lookup(kind_reg, rom, select))
            step = Signal(intbv(0)[widths[name]:])
            if previous is None:
                selectors.append(_first_source(select, span_signal(offset, size), step))
            else:
                selectors.append(_next_source(select, span_signal(offset, size), previous, step))
            previous = step
        selectors.append(_copy(previous, out))
    side_byte = fields["side"]
    side = Signal(bool(0))

    @always_comb
    def side_bit():
        side.next = side_byte == SIDE_SELL

    sideband = sideband_slices()
    seq_lsb, seq_width = sideband["seq"]
    index_lsb, index_width = sideband["msg_index"]
    stale_lsb, _ = sideband["stale"]
    parts = {**fields, "kind": kind_reg, "side": side, "stock_locate": locate_reg,
             "seq": tuser(seq_lsb + seq_width, seq_lsb),
             "msg_index": tuser(index_lsb + index_width, index_lsb), "stale": tuser(stale_lsb)}
    event_word = ConcatSignal(*[parts[name] for name, _ in reversed(EVENT_FIELDS)])
    if len(event_word) != EVENT_BITS:
        raise ValueError(f"event word is {len(event_word)} bits, not {EVENT_BITS}")

    # ---- subscription ----------------------------------------------------
    hits = [Signal(bool(0)) for _ in range(SUBSCRIPTION_ENTRIES)]
    matchers = [_entry_hit(clk, rst, locate_reg, getattr(ports, f"sub{n}_locate"),
                           getattr(ports, f"sub{n}_enable"), hits[n])
                for n in range(SUBSCRIPTION_ENTRIES)]
    hit_vector = ConcatSignal(*reversed(hits))
    subscribed = Signal(bool(0))

    @always_comb
    def any_hit():
        subscribed.next = hit_vector != 0

    # ---- verdict at the last beat ---------------------------------------
    spec_length = Signal(intbv(0)[SPEC_LENGTH_BITS:])
    length = Signal(intbv(0)[LENGTH_BITS:])
    reason = Signal(intbv(0)[REASON_BITS:])
    well_formed = Signal(bool(0))
    end_fire = Signal(bool(0))
    write = Signal(bool(0))

    @always_comb
    def message_length():
        # A one-beat message has not registered its type yet.
        if beat == 0:
            spec_length.next = spec_length_in
        else:
            spec_length.next = spec_length_reg
        length.next = concat(beat, intbv(0)[3:]) + keep_bytes

    @always_comb
    def verdict():
        well_formed.next = spec_length != 0 and length == spec_length
        if spec_length == 0:
            reason.next = R_UNKNOWN_TYPE
        elif length < spec_length:
            reason.next = R_TRUNCATED
        elif length > spec_length:
            reason.next = R_LENGTH_MISMATCH
        elif (kind_reg == EV_ADD or kind_reg == EV_TRADE) and side_byte != SIDE_BUY \
                and side_byte != SIDE_SELL:
            reason.next = R_BAD_SIDE
        elif kind_reg == EV_NONE:
            reason.next = R_SKIPPED
        elif kind_reg != EV_SYSTEM and not ports.pass_all_locates and not subscribed:
            reason.next = R_UNSUBSCRIBED
        else:
            reason.next = R_EVENT

    @always_comb
    def message_end():
        end_fire.next = accept and s_axis.tlast
        write.next = accept and s_axis.tlast and reason == R_EVENT

    # ---- output register with a skid register behind it --------------
    skid_valid = Signal(bool(0))
    skid_data = Signal(intbv(0)[EVENT_BITS:])

    @always_comb
    def input_ready():
        s_axis.tready.next = not skid_valid

    @always_seq(clk.posedge, reset=rst)
    def output_control():
        if not m_event.valid or m_event.ready:
            if skid_valid:
                m_event.valid.next = 1
                skid_valid.next = 0
            else:
                m_event.valid.next = write
        elif write:
            skid_valid.next = 1

    @always(clk.posedge)
    def output_data():
        if not m_event.valid or m_event.ready:
            if skid_valid:
                m_event.data.next = skid_data
            elif write:
                m_event.data.next = event_word
        elif write:
            skid_data.next = event_word

    # ---- counters and sticky bits ----------------------------------------
    stale_lsb, _ = sideband["stale"]
    feed_lsb, _ = sideband["feed"]
    pulses = {name: Signal(bool(0)) for name in
              ("messages", "events", "stale", "feed_b", *DROP_REASONS)}
    counting = [
        _copy(end_fire, pulses["messages"]),
        _copy(write, pulses["events"]),
        _flag_pulse(end_fire, tuser(stale_lsb), pulses["stale"]),
        _flag_pulse(end_fire, tuser(feed_lsb), pulses["feed_b"]),
    ]
    for name in DROP_REASONS:
        counting.append(_reason_pulse(end_fire, reason, REASON_CODE[name], pulses[name]))
    for name in STICKY:
        counting.append(_copy(pulses[name], getattr(ports, f"seen_{name}_set")))
    for type_code, name in TYPE_COUNTERS.items():
        pulse = Signal(bool(0))
        counting.append(_type_pulse(end_fire, well_formed, type_reg, ord(type_code), pulse))
        counting.append(counter(clk, rst, pulse, getattr(ports, f"count_{name}")))
    for name, pulse in pulses.items():
        counting.append(counter(clk, rst, pulse, getattr(ports, f"count_{name}")))

    return (registers, lookups, keepers, selectors, matchers, counting, handshake, count_keep,
            message_state, side_bit, any_hit, message_length, verdict, message_end, input_ready,
            output_control, output_data)
