"""MoldUDP64 sequencer in MyHDL: two feeds of Mold packets in, one stream of
ITCH messages out.

Behaviour is :mod:`rtl.mold_seq.model`; this is how the fabric gets it.

Ingest (one per input).  Beats go into the input's packet buffer at a
speculative write pointer while the header is captured and the message blocks
are walked: a register holds the distance from the current beat to the next
length prefix, and each beat runs up to three prefix steps (a block is at least
three bytes) plus one straddling from the previous beat.  The cycle after
``tlast`` the verdict either commits the packet and pushes its descriptor
(session, sequence number, count, first block's length, length in beats, and
the ten bytes from the first message on: the third beat's last two and the
fourth beat) or rolls the pointer back and counts the reason.  A packet whose
last beat carries ``tdrop`` (the frame filter, cutting through, dropped its
frame at the end) is rolled back without a count.  A new packet's first beat
written in that cycle goes to where the verdict leaves the pointer.
``tready`` falls only when the buffer or the descriptor FIFO is full.

Order.  A well-formed packet takes a ticket as its descriptor is pushed; when
both inputs push in the same cycle the favoured one takes the lower ticket and
the favour alternates.  The arbiter serves the lower ticket of the two FIFO
heads (tickets are 8 bits, compared modulo 256: at most 2 * DESC_DEPTH = 128
are in flight, so two heads' tickets are less than 128 apart).

Arbiter.  IDLE takes a descriptor (a head from the input the extractor is
still reading waits), compares its 64-bit sequence numbers with the state and
registers the outcome; APPLY updates the stream and feed state, counters and
event slots.  A data packet taken while the extractor is free starts it in
IDLE already, on the descriptor's start bytes, without waiting for the
outcome: its first output beat is loaded but not shown.  APPLY then shows
that beat if the packet passes with its first message, drops it if the
message is a duplicate (the extractor goes on, cutting without output), or
stops the extractor if nothing of the packet passes.  Otherwise APPLY
releases the packet's buffer space at once (nothing passes) or hands the
packet to the extractor, at once or, while it is busy with the other input,
once it is free.  The outcome's 64-bit compares and the start thus run side
by side and meet only in the output's valid.  Events leave their slots one
per cycle into the event FIFO before the next descriptor is taken.

Extractor.  Starts with the descriptor's ten start bytes in a 16-byte queue
(the first message block starts at byte 20, its length came with the
descriptor, so the message starts at byte 22, six bytes into the third
beat), reads the packet on from its fifth beat, one beat per cycle, and cuts it
into messages: a length prefix, then up to eight bytes per cycle, realigned
so each message starts in lane 0; when the next prefix is already in the queue
behind a message's last bytes, it is taken in the same cycle.  Dropped leading
messages of a partly duplicate packet are cut the same way without output.
The output registers carry the sideband of
:data:`rtl.common.message_stream.SIDEBAND_FIELDS` in ``tuser`` for every
beat of a message.

Events go to a FIFO that drains one of two ways.  With
``CONTROL.event_stream`` set (the reset value) each event leaves as a feed
event record (:mod:`host.feed.records`) on ``m_feed_event`` (the record word
of :mod:`rtl.feed_path.status` with valid/ready), which the feed path merges
into its event stream.  With it clear the host drains the FIFO over
AXI-Lite: the EVENT_* registers show the oldest event while ``event_valid``
is 1; software reads them and writes ``event_ack`` one higher (it counts the
events it consumed, mod 256), which pops it.  A write repeating the count
does nothing, so a retried write cannot lose an event.  Either way an event
finding the FIFO full is dropped and counted, and the next one kept carries
the lost-before flag.
"""
from __future__ import annotations

from myhdl import Signal, always, always_comb, always_seq, block, concat, intbv, modbv

from host.protocols.moldudp64 import END_OF_SESSION_COUNT, HEADER_SIZE
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_BYTES, DATA_WIDTH, AxiStream, keep_counter
from rtl.common.message_stream import SIDEBAND_FIELDS, ItchStream
from rtl.feed_path.status import LOST_BEFORE_BIT, FeedEventPort, field_bits
from rtl.mold_seq.model import (BUFFER_BEATS, EV_END_OF_SESSION, EV_FEED_RECOVERED,
                                EV_FEED_STALE, EV_GAP, EVENT_FIFO_DEPTH, FEED_COUNTERS,
                                GAP_TABLE_ENTRIES, MALFORMED, MAX_PACKET_BEATS, SEQ_LIMIT)
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import MOLD_SEQ

assert [name for name, _ in SIDEBAND_FIELDS] == ["seq", "msg_index", "feed", "stale"]

PTR_BITS = (BUFFER_BEATS - 1).bit_length()      # buffer address
BEAT_BITS = MAX_PACKET_BEATS.bit_length()        # 0..MAX_PACKET_BEATS
# Descriptors per input: 64 of the smallest data packets (a single Order
# Delete, 6 beats) fill three quarters of the packet buffer, which is where
# packets wait while the output is held off (the filter in front cuts through
# and holds nothing); fewer descriptors would leave the buffer unused.
DESC_DEPTH = 64
TICKET_BITS = 8
assert 2 * DESC_DEPTH <= 1 << (TICKET_BITS - 1)
SESSION_BITS = 80
DIST_BITS = 18
# The packet's bytes from the first message on that the descriptor carries:
# the rest of the beat after the first length prefix and the beat after it,
# so the extractor can start on a packet before reading its buffer.
START_BYTES = 2 * DATA_BYTES - (HEADER_SIZE + 2) % DATA_BYTES
# Descriptor word, from bit 0: beats, first block's length, message_count,
# sequence_number, session, start bytes; the FIFO adds the ticket on top.
DESC_BITS = BEAT_BITS + 16 + 16 + 64 + SESSION_BITS + 8 * START_BYTES
D_FIRST_LEN = BEAT_BITS
D_COUNT = D_FIRST_LEN + 16
D_SEQ = D_COUNT + 16
D_SESSION = D_SEQ + 64
D_START = D_SESSION + SESSION_BITS
# Event FIFO word, from bit 0: b, a, feed, kind, lost before.
EVENT_BITS = 64 + 64 + 1 + 4 + 1
EV_KIND_LSB = 129
EV_LOST = 133
REC_KIND = field_bits()["kind"][0]
REC_FEED = field_bits()["feed"][0]
REC_SEQ = field_bits()["seq"][0]
REC_EXPECTED = field_bits()["expected"][0]
# Accepted input beat holding a single-message packet's last byte -> first
# valid output beat, with the block idle and the output free: verdict
# (descriptor pushed), head taken and judged while the extractor starts on it
# from the descriptor's start bytes (the first beat into the output
# register), APPLY shows that beat if the packet passes.
LATENCY_CYCLES = 3

# Verdict codes: 0 passed, then MALFORMED in order.
R_OK = 0
R_FRAME_ERROR = 1 + MALFORMED.index("frame_error")
R_OVERSIZE = 1 + MALFORMED.index("oversize")
R_TRUNCATED = 1 + MALFORMED.index("truncated")
R_BAD_FIELD = 1 + MALFORMED.index("bad_field")
R_BLOCK_PAST_END = 1 + MALFORMED.index("block_past_end")
R_ZERO_LENGTH = 1 + MALFORMED.index("zero_length_block")
R_COUNT_MISMATCH = 1 + MALFORMED.index("count_mismatch")
R_TRAILING = 1 + MALFORMED.index("trailing_bytes")
R_SEQ_RANGE = 1 + MALFORMED.index("sequence_out_of_range")
# The frame filter dropped the packet's frame at its end (tdrop): not a
# malformed packet, counted nowhere here.
R_DISCARDED = len(MALFORMED) + 1
REASON_BITS = R_DISCARDED.bit_length()
MASK64 = (1 << 64) - 1

EOS_COUNT = END_OF_SESSION_COUNT
FIRST_PREFIX = HEADER_SIZE  # byte offset of the first length prefix

# Arbiter states.
A_IDLE, A_APPLY, A_LAUNCH = 0, 1, 2
# Extractor states.
X_LEN, X_MSG = 0, 1
# The first message starts in beat FIRST_BEAT of a packet, FIRST_SKIP bytes in
# (after the header and its length prefix, which the descriptor brought); the
# start bytes run to the end of the beat after it, so the extractor reads the
# buffer from beat FETCH_BEAT on.
FIRST_BEAT = (FIRST_PREFIX + 2) // DATA_BYTES
FIRST_SKIP = FIRST_PREFIX + 2 - FIRST_BEAT * DATA_BYTES
FETCH_BEAT = FIRST_BEAT + 2
assert START_BYTES == 2 * DATA_BYTES - FIRST_SKIP


@block
def _packet_ram(clk, we, waddr, wdata, re, raddr, rdata):
    """One input's packet buffer: a write port, a registered read port."""
    mem = [Signal(intbv(0)[DATA_WIDTH:]) for _ in range(BUFFER_BEATS)]

    @always(clk.posedge)
    def write():
        if we:
            mem[waddr].next = wdata

    @always(clk.posedge)
    def read():
        if re:
            rdata.next = mem[raddr]

    return write, read


@block
def _fifo(clk, rst, push, push_word, pop, head, level, depth):
    """A first-word-fall-through FIFO; ``level`` counts the entries."""
    bits = (depth - 1).bit_length()
    mem = [Signal(intbv(0)[len(push_word):]) for _ in range(depth)]
    wr = Signal(modbv(0)[bits:])
    rd = Signal(modbv(0)[bits:])

    @always(clk.posedge)
    def write():
        if push:
            mem[wr].next = push_word

    @always_comb
    def read():
        head.next = mem[rd]

    @always_seq(clk.posedge, reset=rst)
    def pointers():
        if push:
            wr.next = wr + 1
        if pop:
            rd.next = rd + 1
        if push and not pop:
            level.next = level + 1
        elif pop and not push:
            level.next = level - 1

    return write, read, pointers


@block
def _ingest(clk, rst, s_axis, rd_base, desc_level, wr_en, wr_addr, wr_data, desc_push,
            desc_word, end_fire, reason):
    """Buffer, walk and judge one input's packets (see the module docstring)."""
    wr_ptr = Signal(modbv(0)[PTR_BITS + 1:])
    wr_commit = Signal(modbv(0)[PTR_BITS + 1:])
    beat = Signal(intbv(0)[BEAT_BITS:])
    keep_bytes = Signal(intbv(0)[4:])
    accept = Signal(bool(0))
    long_now = Signal(bool(0))

    frame_error = Signal(bool(0))
    too_long = Signal(bool(0))
    bad_field = Signal(bool(0))
    session = Signal(intbv(0)[SESSION_BITS:])
    seq = Signal(intbv(0)[64:])
    count = Signal(intbv(0)[16:])
    first_len = Signal(intbv(0)[16:])
    start = Signal(intbv(0)[8 * START_BYTES:])
    dist = Signal(intbv(0)[DIST_BITS:])
    blocks = Signal(intbv(0)[16:])
    zero_found = Signal(bool(0))
    hi_pending = Signal(bool(0))
    hi_byte = Signal(intbv(0)[8:])
    end_pending = Signal(bool(0))
    end_drop = Signal(bool(0))
    end_short = Signal(bool(0))
    end_keep = Signal(intbv(0)[4:])
    end_beats = Signal(intbv(0)[BEAT_BITS:])
    tdata = s_axis.tdata

    count_keep = keep_counter(s_axis.tkeep, keep_bytes)

    @always_comb
    def handshake():
        full = wr_ptr[PTR_BITS] != rd_base[PTR_BITS] and \
            wr_ptr[PTR_BITS:] == rd_base[PTR_BITS:]
        # A full descriptor FIFO holds the input off, counting a push under way.
        s_axis.tready.next = not full and desc_level + end_pending < DESC_DEPTH
        long_now.next = too_long or beat == MAX_PACKET_BEATS

    @always_comb
    def accepted():
        accept.next = s_axis.tvalid and s_axis.tready

    @always_comb
    def verdict():
        wanted = intbv(0)[16:]
        clean = intbv(0)[16:]
        wanted[:] = count
        if count == 0 or count == EOS_COUNT:
            wanted[:] = 0
        clean[:] = blocks
        if not zero_found and dist > end_keep:
            # The last block counted runs past the end.
            clean[:] = blocks - 1
        if end_drop:
            reason.next = R_DISCARDED
        elif frame_error:
            reason.next = R_FRAME_ERROR
        elif too_long:
            reason.next = R_OVERSIZE
        elif end_short:
            reason.next = R_TRUNCATED
        elif bad_field:
            reason.next = R_BAD_FIELD
        elif not zero_found and dist == end_keep:
            if wanted == clean:
                if seq > SEQ_LIMIT:
                    reason.next = R_SEQ_RANGE
                else:
                    reason.next = R_OK
            else:
                reason.next = R_COUNT_MISMATCH
        elif wanted <= clean:
            reason.next = R_TRAILING
        elif zero_found:
            reason.next = R_ZERO_LENGTH
        else:
            reason.next = R_BLOCK_PAST_END

    @always_comb
    def outcome():
        end_fire.next = end_pending
        desc_push.next = end_pending and reason == R_OK
        desc_word.next = concat(start, session, seq, count, first_len, end_beats)

    @always_comb
    def write_port():
        wr_en.next = accept and not long_now
        wr_data.next = s_axis.tdata
        # A rejected packet's space is reused at once by the next one's first beat.
        if end_pending and reason != R_OK:
            wr_addr.next = wr_commit[PTR_BITS:]
        else:
            wr_addr.next = wr_ptr[PTR_BITS:]

    @always_seq(clk.posedge, reset=rst)
    def receive():
        base = modbv(0)[PTR_BITS + 1:]
        base[:] = wr_ptr
        if end_pending:
            if reason == R_OK:
                wr_commit.next = wr_ptr
            else:
                base[:] = wr_commit
        if accept and not long_now:
            wr_ptr.next = base + 1
        else:
            wr_ptr.next = base
        end_pending.next = accept and s_axis.tlast

        if accept:
            d = intbv(0)[DIST_BITS:]
            n = intbv(0)[16:]
            lim = intbv(0)[4:]
            t = intbv(0)[16:]
            length = intbv(0)[16:]
            z = bool(0)
            hp = bool(0)
            if beat == 0:
                d[:] = FIRST_PREFIX
                n[:] = 0
                frame_error.next = s_axis.tuser
                too_long.next = 0
                # Session bytes 0..7: first byte in the top bits.
                session.next[SESSION_BITS:16] = concat(
                    tdata[8:0], tdata[16:8], tdata[24:16], tdata[32:24],
                    tdata[40:32], tdata[48:40], tdata[56:48], tdata[64:56])
                bad_field.next = tdata[7] or tdata[15] or tdata[23] or tdata[31] or \
                    tdata[39] or tdata[47] or tdata[55] or tdata[63]
            else:
                d[:] = dist
                n[:] = blocks
                z = bool(zero_found)
                hp = bool(hi_pending)
                if s_axis.tuser:
                    frame_error.next = 1
                if long_now:
                    too_long.next = 1
            if beat == 1:
                session.next[16:0] = concat(tdata[8:0], tdata[16:8])
                if tdata[7] or tdata[15]:
                    bad_field.next = 1
                seq.next[64:16] = concat(tdata[24:16], tdata[32:24], tdata[40:32],
                                         tdata[48:40], tdata[56:48], tdata[64:56])
            if beat == 2:
                seq.next[16:0] = concat(tdata[8:0], tdata[16:8])
                count.next = concat(tdata[24:16], tdata[32:24])
                first_len.next = concat(tdata[40:32], tdata[48:40])
                start.next[16:0] = tdata[64:48]
            if beat == FIRST_BEAT + 1:
                start.next[8 * START_BYTES:16] = tdata

            # The block walk: prefixes read only from bytes of the packet.
            lim[:] = DATA_BYTES
            if s_axis.tlast:
                lim[:] = keep_bytes
            if hp and not z:
                length[:] = concat(hi_byte, tdata[8:0])
                if length == 0:
                    z = bool(1)
                else:
                    d[:] = length + 1
                    n[:] = n + 1
                hp = bool(0)
            for _step in range(3):
                if not z and d + 1 < lim:
                    t[:] = (tdata >> (8 * d[3:])) & 0xFFFF
                    length[:] = concat(t[8:0], t[16:8])
                    if length == 0:
                        z = bool(1)
                    else:
                        d[:] = d + 2 + length
                        n[:] = n + 1
            if not z and d == DATA_BYTES - 1 and not s_axis.tlast:
                hp = bool(1)
                hi_byte.next = tdata[64:56]
            blocks.next = n
            zero_found.next = z
            hi_pending.next = hp
            if s_axis.tlast or d < DATA_BYTES:
                # Kept as is at the end: the verdict compares it with the last beat's bytes.
                dist.next = d
            else:
                dist.next = d - DATA_BYTES

            if s_axis.tlast:
                beat.next = 0
                end_drop.next = s_axis.tdrop
                end_short.next = beat < 2 or (beat == 2 and keep_bytes < FIRST_PREFIX - 16)
                end_keep.next = keep_bytes
                end_beats.next = beat + 1
            elif beat != MAX_PACKET_BEATS:
                beat.next = beat + 1

    return count_keep, handshake, accepted, verdict, outcome, write_port, receive


@block
def _overlap(lo, hi, start, stop, enable, out):
    """How many of [lo, hi) lie in [start, stop); 0 unless ``enable``.  [lo, hi)
    is a dropped run of at most 0xFFFF sequence numbers."""

    @always_comb
    def measure():
        low = intbv(0)[64:]
        high = intbv(0)[64:]
        low[:] = lo
        if start > lo:
            low[:] = start
        high[:] = hi
        if stop < hi:
            high[:] = stop
        if enable and high > low:
            out.next = (high - low) & 0xFFFF
        else:
            out.next = 0

    return measure


@block
def _below(lo, hi, limit, out):
    """How many of [lo, hi) lie below ``limit``."""

    @always_comb
    def measure():
        high = intbv(0)[64:]
        high[:] = hi
        if limit < hi:
            high[:] = limit
        if high > lo:
            out.next = (high - lo) & 0xFFFF
        else:
            out.next = 0

    return measure


@block
def _add16(a, b, total):
    @always_comb
    def add():
        total.next = (a + b) & 0xFFFF

    return add


@block
def _gap_slot(clk, rst, clear, shift, in_expected, in_received, in_valid,
              expected, received, valid):
    """One entry of the gap table, a shift register newest first."""

    @always_seq(clk.posedge, reset=rst)
    def hold():
        if clear:
            valid.next = 0
        elif shift:
            expected.next = in_expected
            received.next = in_received
            valid.next = in_valid

    return hold


@block
def _feed_counters(clk, rst, apply, mine, is_data, is_heartbeat, is_end, message_count,
                   session_ok, jump, passing, malformed_fire, reason, counts):
    """One feed's counters, in FEED_COUNTERS order."""
    packets, messages, heartbeats, ends, other, passed, jumps = counts[:7]
    malformed = counts[7:]

    @always_seq(clk.posedge, reset=rst)
    def arbitrated():
        if apply and mine:
            packets.next = (packets + 1) & 0xFFFFFFFF
            if is_heartbeat:
                heartbeats.next = (heartbeats + 1) & 0xFFFFFFFF
            if is_end:
                ends.next = (ends + 1) & 0xFFFFFFFF
            if is_data:
                messages.next = (messages + message_count) & 0xFFFFFFFF
            if not session_ok:
                other.next = (other + 1) & 0xFFFFFFFF
            elif jump:
                jumps.next = (jumps + 1) & 0xFFFFFFFF
            if session_ok:
                passed.next = (passed + passing) & 0xFFFFFFFF

    reason_counters = [_reason_counter(clk, rst, malformed_fire, reason, code + 1, count)
                       for code, count in enumerate(malformed)]
    return arbitrated, reason_counters


@block
def _reason_counter(clk, rst, fire, reason, code, count):
    @always_seq(clk.posedge, reset=rst)
    def counting():
        if fire and reason == code:
            count.next = (count + 1) & 0xFFFFFFFF

    return counting


def _side_signals() -> dict:
    """The signals between one input's ingest, buffer, FIFO and the arbiter."""
    return {
        "rd_base": Signal(modbv(0)[PTR_BITS + 1:]),
        "desc_level": Signal(intbv(0)[DESC_DEPTH.bit_length():]),
        "wr_en": Signal(bool(0)), "wr_addr": Signal(intbv(0)[PTR_BITS:]),
        "wr_data": Signal(intbv(0)[DATA_WIDTH:]),
        "desc_push": Signal(bool(0)), "desc_word": Signal(intbv(0)[DESC_BITS:]),
        "end_fire": Signal(bool(0)), "reason": Signal(intbv(0)[REASON_BITS:]),
        "re": Signal(bool(0)), "raddr": Signal(intbv(0)[PTR_BITS:]),
        "rdata": Signal(intbv(0)[DATA_WIDTH:]),
        "ticket": Signal(intbv(0)[TICKET_BITS:]),
        "pop": Signal(bool(0)),
        "head": Signal(intbv(0)[TICKET_BITS + DESC_BITS:]),
        "push_word": Signal(intbv(0)[TICKET_BITS + DESC_BITS:]),
    }


@block
def mold_seq(clk, rst, s_axis_a: AxiStream, s_axis_b: AxiStream, m_axis: ItchStream,
             m_feed_event: FeedEventPort, s_axil: AxiLite):
    """The block's top level: feed A on ``s_axis_a``, feed B on ``s_axis_b``,
    messages on ``m_axis``, events on ``m_feed_event`` (or ``s_axil``),
    registers on ``s_axil``."""
    ports = RegisterPorts(MOLD_SEQ)
    registers = regfile(clk, rst, s_axil, ports, MOLD_SEQ)

    # ---- ingest, buffers, descriptor FIFOs ------------------------------------
    side_a, side_b = _side_signals(), _side_signals()
    parts = []
    for side, s_axis in ((side_a, s_axis_a), (side_b, s_axis_b)):
        parts += [
            _ingest(clk, rst, s_axis, side["rd_base"], side["desc_level"], side["wr_en"],
                    side["wr_addr"], side["wr_data"], side["desc_push"], side["desc_word"],
                    side["end_fire"], side["reason"]),
            _packet_ram(clk, side["wr_en"], side["wr_addr"], side["wr_data"], side["re"],
                        side["raddr"], side["rdata"]),
            _fifo(clk, rst, side["desc_push"], side["push_word"], side["pop"], side["head"],
                  side["desc_level"], DESC_DEPTH),
        ]
    push_a, push_b = side_a["desc_push"], side_b["desc_push"]
    ticket_a, ticket_b = side_a["ticket"], side_b["ticket"]
    push_word_a, push_word_b = side_a["push_word"], side_b["push_word"]
    desc_word_a, desc_word_b = side_a["desc_word"], side_b["desc_word"]
    head_a, head_b = side_a["head"], side_b["head"]
    level_a, level_b = side_a["desc_level"], side_b["desc_level"]
    pop_a, pop_b = side_a["pop"], side_b["pop"]
    rd_base_a, rd_base_b = side_a["rd_base"], side_b["rd_base"]
    re_a, re_b = side_a["re"], side_b["re"]
    raddr_a, raddr_b = side_a["raddr"], side_b["raddr"]
    rdata_a, rdata_b = side_a["rdata"], side_b["rdata"]

    next_ticket = Signal(modbv(0)[TICKET_BITS:])
    favour_b = Signal(bool(0))

    @always_comb
    def tickets():
        if push_a and push_b and favour_b:
            ticket_a.next = (next_ticket + 1) % (1 << TICKET_BITS)
        else:
            ticket_a.next = next_ticket
        if push_a and push_b and not favour_b:
            ticket_b.next = (next_ticket + 1) % (1 << TICKET_BITS)
        else:
            ticket_b.next = next_ticket

    @always_comb
    def push_words():
        push_word_a.next = concat(ticket_a, desc_word_a)
        push_word_b.next = concat(ticket_b, desc_word_b)

    @always_seq(clk.posedge, reset=rst)
    def ticketing():
        if push_a and push_b:
            next_ticket.next = next_ticket + 2
            favour_b.next = not favour_b
        elif push_a or push_b:
            next_ticket.next = next_ticket + 1

    # ---- arbiter state ------------------------------------------------------
    state = Signal(intbv(A_IDLE, min=0, max=3))
    pick_b = Signal(bool(0))
    can_take = Signal(bool(0))
    cur_port = Signal(bool(0))
    cur_session = Signal(intbv(0)[SESSION_BITS:])
    cur_seq = Signal(intbv(0)[64:])
    cur_count = Signal(intbv(0)[16:])
    cur_beats = Signal(intbv(0)[BEAT_BITS:])
    cur_first_len = Signal(intbv(0)[16:])
    cur_start = Signal(intbv(0)[8 * START_BYTES:])
    h_beats = Signal(intbv(0)[BEAT_BITS:])
    h_first_len = Signal(intbv(0)[16:])
    h_count = Signal(intbv(0)[16:])
    h_seq = Signal(intbv(0)[64:])
    h_session = Signal(intbv(0)[SESSION_BITS:])
    h_start = Signal(intbv(0)[8 * START_BYTES:])

    d_data = Signal(bool(0))
    d_heartbeat = Signal(bool(0))
    d_end = Signal(bool(0))
    d_session_ok = Signal(bool(0))
    d_jump = Signal(bool(0))
    d_contiguous = Signal(bool(0))
    d_expect = Signal(intbv(0)[64:])
    d_gap = Signal(bool(0))
    d_dropped = Signal(intbv(0)[16:])
    d_reach = Signal(intbv(0)[64:])
    d_hi = Signal(intbv(0)[64:])
    d_lead = Signal(bool(0))      # the packet passes with its first message

    session_valid = Signal(bool(0))
    latched_session = Signal(intbv(0)[SESSION_BITS:])
    active_session = Signal(intbv(0)[SESSION_BITS:])
    started = Signal(bool(0))
    next_seq = Signal(intbv(0)[64:])
    first_seq = Signal(intbv(0)[64:])
    end_seen = Signal(bool(0))
    missing = Signal(intbv(0)[64:])
    expect_a = Signal(intbv(0)[64:])
    expect_b = Signal(intbv(0)[64:])
    expect_set_a = Signal(bool(0))
    expect_set_b = Signal(bool(0))
    stale_a = Signal(bool(0))
    stale_b = Signal(bool(0))

    # Event slots, filled in APPLY, emptied one per cycle into the FIFO.
    ev_feed_pending = Signal(bool(0))
    ev_feed_kind = Signal(intbv(0)[4:])
    ev_feed_a = Signal(intbv(0)[64:])
    ev_feed_b = Signal(intbv(0)[64:])
    ev_gap_pending = Signal(bool(0))
    ev_end_pending = Signal(bool(0))
    ev_port = Signal(bool(0))
    ev_gap_expected = Signal(intbv(0)[64:])
    ev_push = Signal(bool(0))
    ev_word = Signal(intbv(0)[EVENT_BITS:])
    ev_pop = Signal(bool(0))
    ev_head = Signal(intbv(0)[EVENT_BITS:])
    ev_level = Signal(intbv(0)[6:])
    ev_full = Signal(bool(0))
    ev_taken = Signal(modbv(0)[8:])
    ev_lost_pending = Signal(bool(0))

    # Gap table.
    gap_shift = Signal(bool(0))
    gap_clear = Signal(bool(0))
    gap_expected = [Signal(intbv(0)[64:]) for _ in range(GAP_TABLE_ENTRIES)]
    gap_received = [Signal(intbv(0)[64:]) for _ in range(GAP_TABLE_ENTRIES)]
    gap_valid = [Signal(bool(0)) for _ in range(GAP_TABLE_ENTRIES)]
    evicted = Signal(bool(0))
    const_one = Signal(bool(1))
    gap_table_full = gap_valid[GAP_TABLE_ENTRIES - 1]
    slots = [
        _gap_slot(clk, rst, gap_clear, gap_shift,
                  next_seq if k == 0 else gap_expected[k - 1],
                  cur_seq if k == 0 else gap_received[k - 1],
                  const_one if k == 0 else gap_valid[k - 1],
                  gap_expected[k], gap_received[k], gap_valid[k])
        for k in range(GAP_TABLE_ENTRIES)]
    late_parts = [Signal(intbv(0)[16:]) for _ in range(GAP_TABLE_ENTRIES + 1)]
    assumed = Signal(intbv(0)[16:])
    overlaps = [_overlap(cur_seq, d_hi, gap_expected[k], gap_received[k], gap_valid[k],
                         late_parts[k]) for k in range(GAP_TABLE_ENTRIES)]
    overlaps.append(_below(cur_seq, d_hi, first_seq, late_parts[GAP_TABLE_ENTRIES]))
    overlaps.append(_overlap(cur_seq, d_hi, first_seq, gap_expected[GAP_TABLE_ENTRIES - 1],
                             evicted, assumed))
    # The runs are disjoint parts of one dropped run: the sum fits 16 bits.
    partial_sums = [Signal(intbv(0)[16:]) for _ in range(GAP_TABLE_ENTRIES)]
    adders = [_add16(late_parts[0] if k == 0 else partial_sums[k - 1], late_parts[k + 1],
                     partial_sums[k]) for k in range(GAP_TABLE_ENTRIES)]
    late_total = partial_sums[GAP_TABLE_ENTRIES - 1]

    # ---- extractor state ------------------------------------------------------
    x_start = Signal(bool(0))
    x_busy = Signal(bool(0))
    x_port = Signal(bool(0))
    x_addr = Signal(modbv(0)[PTR_BITS:])
    x_left = Signal(intbv(0)[BEAT_BITS:])
    x_beats = Signal(intbv(0)[BEAT_BITS:])
    x_count = Signal(intbv(0)[16:])
    x_drop = Signal(intbv(0)[16:])
    x_index = Signal(intbv(0)[16:])
    x_seq = Signal(intbv(0)[64:])
    x_stale = Signal(bool(0))
    x_state = Signal(intbv(X_LEN, min=0, max=2))
    x_rem = Signal(intbv(0)[16:])
    queue = Signal(intbv(0)[2 * DATA_WIDTH:])
    queued = Signal(intbv(0, min=0, max=2 * DATA_BYTES + 1))
    combined = Signal(intbv(0)[2 * DATA_WIDTH:])
    avail = Signal(intbv(0, min=0, max=2 * DATA_BYTES + 1))
    stage_valid = Signal(bool(0))
    stage = Signal(intbv(0)[DATA_WIDTH:])
    start_stale = Signal(bool(0))
    held_stale = Signal(bool(0))
    x_release = Signal(bool(0))
    a_release = Signal(bool(0))
    # A start on the head being taken, before it is judged (IDLE), or on the
    # judged packet (APPLY, LAUNCH); x_spec marks the APPLY after the former.
    spec_start = Signal(bool(0))
    x_spec = Signal(bool(0))
    x_fresh = Signal(bool(0))
    x_abort = Signal(bool(0))
    s_port = Signal(bool(0))
    s_beats = Signal(intbv(0)[BEAT_BITS:])
    s_count = Signal(intbv(0)[16:])
    s_seq = Signal(intbv(0)[64:])
    s_first_len = Signal(intbv(0)[16:])
    s_bytes = Signal(intbv(0)[8 * START_BYTES:])
    s_drop = Signal(intbv(0)[16:])
    s_stale = Signal(bool(0))
    s_addr = Signal(intbv(0)[PTR_BITS:])
    # The extractor's state as this cycle's decisions see it: its registers,
    # or the packet it starts on.
    e_busy = Signal(bool(0))
    e_port = Signal(bool(0))
    e_state = Signal(intbv(X_LEN, min=0, max=2))
    e_rem = Signal(intbv(0)[16:])
    e_index = Signal(intbv(0)[16:])
    e_count = Signal(intbv(0)[16:])
    e_drop = Signal(intbv(0)[16:])
    e_seq = Signal(intbv(0)[64:])
    e_stale = Signal(bool(0))
    e_queue = Signal(intbv(0)[2 * DATA_WIDTH:])
    e_queued = Signal(intbv(0, min=0, max=2 * DATA_BYTES + 1))
    e_stage_valid = Signal(bool(0))
    e_left = Signal(intbv(0)[BEAT_BITS:])
    e_addr = Signal(intbv(0)[PTR_BITS:])

    go = Signal(bool(0))
    consume = Signal(intbv(0, min=0, max=DATA_BYTES + 1))
    take = Signal(intbv(0, min=0, max=DATA_BYTES + 1))
    emit = Signal(bool(0))
    merge = Signal(bool(0))
    append = Signal(bool(0))
    fetch = Signal(bool(0))
    fetch_addr = Signal(intbv(0)[PTR_BITS:])
    o_valid = Signal(bool(0))
    o_spec = Signal(bool(0))      # loaded by a start before its packet was judged
    o_shown = Signal(bool(0))
    out_free = Signal(bool(0))
    o_data = Signal(intbv(0)[DATA_WIDTH:])
    o_keep = Signal(intbv(0)[DATA_BYTES:])
    o_last = Signal(bool(0))
    o_seq = Signal(intbv(0)[64:])
    o_index = Signal(intbv(0)[16:])
    o_feed = Signal(bool(0))
    o_stale = Signal(bool(0))

    @always_comb
    def sessions():
        if ports.session_from_register:
            active_session.next = concat(ports.session_cfg0, ports.session_cfg1,
                                         ports.session_cfg2)
        else:
            active_session.next = latched_session

    @always_comb
    def choose():
        # Serve the older ticket; a head from the input the extractor still
        # reads waits (its buffer space is released in order).
        ta = head_a[TICKET_BITS + DESC_BITS:DESC_BITS]
        tb = head_b[TICKET_BITS + DESC_BITS:DESC_BITS]
        b_first = level_b != 0 and (level_a == 0 or ((ta - tb) & 0x80) == 0)
        pick_b.next = b_first
        ready = state == A_IDLE and not ports.hold and not ev_feed_pending and \
            not ev_gap_pending and not ev_end_pending and (level_a != 0 or level_b != 0)
        can_take.next = ready and not (x_busy and x_port == b_first)
        pop_a.next = ready and not (x_busy and x_port == b_first) and not b_first
        pop_b.next = ready and not (x_busy and x_port == b_first) and b_first

    @always_comb
    def head_fields():
        word = intbv(0)[DESC_BITS:]
        if pick_b:
            word[:] = head_b[DESC_BITS:]
        else:
            word[:] = head_a[DESC_BITS:]
        h_beats.next = word[D_FIRST_LEN:]
        h_first_len.next = word[D_COUNT:D_FIRST_LEN]
        h_count.next = word[D_SEQ:D_COUNT]
        h_seq.next = word[D_SESSION:D_SEQ]
        h_session.next = word[D_START:D_SESSION]
        h_start.next = word[DESC_BITS:D_START]

    @always_comb
    def launch():
        passing = state == A_APPLY and d_session_ok and d_data and d_dropped != cur_count
        # A data packet taken while the extractor is free starts at once; it
        # is judged meanwhile, and APPLY lets it run (and shows its first
        # beat) or stops it.  Otherwise the judged packet starts in APPLY or,
        # the extractor busy with the other input, in LAUNCH.
        spec = can_take and not x_busy and h_count != 0 and h_count != EOS_COUNT
        spec_start.next = spec
        x_start.next = spec or (((passing and not x_spec) or state == A_LAUNCH) and not x_busy)
        x_fresh.next = state == A_APPLY and x_spec
        x_abort.next = state == A_APPLY and x_spec and not passing
        start_stale.next = held_stale
        if state == A_APPLY:
            start_stale.next = ports.stream_stale or d_gap
        # A packet the extractor started on gives its space back itself.
        a_release.next = state == A_APPLY and not passing and not x_spec

    @always_comb
    def start_source():
        base = modbv(0)[PTR_BITS + 1:]
        if spec_start:
            s_port.next = pick_b
            s_beats.next = h_beats
            s_count.next = h_count
            s_seq.next = h_seq
            s_first_len.next = h_first_len
            s_bytes.next = h_start
            s_drop.next = 0
            s_stale.next = 0
            if pick_b:
                base[:] = rd_base_b
            else:
                base[:] = rd_base_a
            # The buffer's base may be moving on by the packet just extracted
            # from the same input.
            if x_release and x_port == pick_b:
                base[:] = base + x_beats
        else:
            s_port.next = cur_port
            s_beats.next = cur_beats
            s_count.next = cur_count
            s_seq.next = cur_seq
            s_first_len.next = cur_first_len
            s_bytes.next = cur_start
            s_drop.next = d_dropped
            s_stale.next = start_stale
            # A judged packet's input is not the one the extractor just left.
            if cur_port:
                base[:] = rd_base_b
            else:
                base[:] = rd_base_a
        s_addr.next = (base[PTR_BITS:] + FETCH_BEAT) % BUFFER_BEATS

    @always_comb
    def event_out():
        ev_push.next = ev_feed_pending or ev_gap_pending or ev_end_pending
        if ev_feed_pending:
            ev_word.next = concat(ev_lost_pending, ev_feed_kind, ev_port, ev_feed_a, ev_feed_b)
        elif ev_gap_pending:
            ev_word.next = concat(ev_lost_pending, intbv(EV_GAP)[4:], ev_port, ev_gap_expected,
                                  cur_seq)
        else:
            ev_word.next = concat(ev_lost_pending, intbv(EV_END_OF_SESSION)[4:], ev_port,
                                  cur_seq, intbv(0)[64:])
        ev_full.next = ev_level == EVENT_FIFO_DEPTH

    @always_comb
    def gap_control():
        gap_clear.next = state == A_IDLE and ports.hold
        gap_shift.next = state == A_APPLY and d_session_ok and d_gap

    @always_seq(clk.posedge, reset=rst)
    def arbiter():
        if ev_feed_pending:
            ev_feed_pending.next = 0
        elif ev_gap_pending:
            ev_gap_pending.next = 0
        elif ev_end_pending:
            ev_end_pending.next = 0
        if ev_push and ev_full:
            ports.count_events_lost.next = (ports.count_events_lost + 1) & 0xFFFFFFFF
            ev_lost_pending.next = 1
        elif ev_push:
            ev_lost_pending.next = 0

        if state == A_IDLE:
            if ports.hold:
                session_valid.next = 0
                started.next = 0
                end_seen.next = 0
                next_seq.next = 0
                expect_set_a.next = 0
                expect_set_b.next = 0
                stale_a.next = 0
                stale_b.next = 0
                evicted.next = 0
            elif can_take:
                cur_port.next = pick_b
                cur_beats.next = h_beats
                cur_first_len.next = h_first_len
                cur_count.next = h_count
                cur_seq.next = h_seq
                cur_session.next = h_session
                cur_start.next = h_start
                heartbeat = h_count == 0
                ending = h_count == EOS_COUNT
                d_heartbeat.next = heartbeat
                d_end.next = ending
                d_data.next = not heartbeat and not ending
                if ports.session_from_register or session_valid:
                    d_session_ok.next = h_session == active_session
                else:
                    d_session_ok.next = 1
                expectation = intbv(0)[64:]
                known = bool(0)
                if pick_b:
                    expectation[:] = expect_b
                    known = bool(expect_set_b)
                else:
                    expectation[:] = expect_a
                    known = bool(expect_set_a)
                reach = intbv(0)[64:]
                reach[:] = h_seq
                if not heartbeat and not ending:
                    reach[:] = h_seq + h_count
                d_reach.next = reach
                d_jump.next = known and h_seq > expectation
                d_contiguous.next = known and h_seq == expectation
                if known and expectation > reach:
                    d_expect.next = expectation
                else:
                    d_expect.next = reach
                d_gap.next = started and h_seq > next_seq
                # The packet passes with its first message: what a beat loaded
                # by a start before this judgement needs to show.
                d_lead.next = not heartbeat and not ending and \
                    not (started and next_seq > h_seq) and \
                    (h_session == active_session or
                     not (ports.session_from_register or session_valid))
                # Copies below next_seq are dropped: [h_seq, d_hi).
                if started and next_seq > h_seq:
                    if next_seq < h_seq + h_count:
                        d_dropped.next = (next_seq - h_seq) & 0xFFFF
                        d_hi.next = next_seq
                    else:
                        d_dropped.next = h_count
                        d_hi.next = h_seq + h_count
                else:
                    d_dropped.next = 0
                    d_hi.next = h_seq
                state.next = A_APPLY

        elif state == A_APPLY:
            state.next = A_IDLE
            if d_session_ok:
                if not session_valid:
                    session_valid.next = 1
                    latched_session.next = cur_session
                ev_port.next = cur_port
                if cur_port:
                    expect_b.next = d_expect
                    expect_set_b.next = 1
                    if d_jump and not stale_b:
                        stale_b.next = 1
                    elif d_contiguous and stale_b:
                        stale_b.next = 0
                else:
                    expect_a.next = d_expect
                    expect_set_a.next = 1
                    if d_jump and not stale_a:
                        stale_a.next = 1
                    elif d_contiguous and stale_a:
                        stale_a.next = 0
                feed_stale = bool(stale_a)
                feed_expect = intbv(0)[64:]
                feed_expect[:] = expect_a
                if cur_port:
                    feed_stale = bool(stale_b)
                    feed_expect[:] = expect_b
                if d_jump and not feed_stale:
                    ev_feed_pending.next = 1
                    ev_feed_kind.next = EV_FEED_STALE
                    ev_feed_a.next = feed_expect
                    ev_feed_b.next = cur_seq
                elif d_contiguous and feed_stale:
                    ev_feed_pending.next = 1
                    ev_feed_kind.next = EV_FEED_RECOVERED
                    ev_feed_a.next = cur_seq
                    ev_feed_b.next = 0

                if d_gap:
                    ev_gap_pending.next = 1
                    ev_gap_expected.next = next_seq
                    missing.next = (missing + cur_seq - next_seq) & MASK64
                    ports.count_gaps.next = (ports.count_gaps + 1) & 0xFFFFFFFF
                    if gap_table_full:
                        evicted.next = 1
                if d_data:
                    if not started:
                        started.next = 1
                        first_seq.next = cur_seq
                    if d_dropped != 0:
                        ports.count_late.next = (ports.count_late + late_total) & 0xFFFFFFFF
                        ports.count_duplicates.next = \
                            (ports.count_duplicates + d_dropped - late_total) & 0xFFFFFFFF
                        ports.count_assumed_duplicates.next = \
                            (ports.count_assumed_duplicates + assumed) & 0xFFFFFFFF
                    if d_dropped != cur_count:
                        next_seq.next = d_reach
                        ports.count_passed.next = \
                            (ports.count_passed + cur_count - d_dropped) & 0xFFFFFFFF
                        held_stale.next = ports.stream_stale or d_gap
                        if x_busy and not x_spec:
                            state.next = A_LAUNCH
                else:
                    if d_gap:
                        next_seq.next = cur_seq
                    if d_end:
                        end_seen.next = 1
                        ev_end_pending.next = 1

        elif state == A_LAUNCH:
            if not x_busy:
                state.next = A_IDLE

    feed_apply = Signal(bool(0))
    mine_a = Signal(bool(0))
    mine_b = Signal(bool(0))
    passing_count = Signal(intbv(0)[16:])
    jump_fresh = Signal(bool(0))

    @always_comb
    def feed_flags():
        feed_apply.next = state == A_APPLY
        mine_a.next = not cur_port
        mine_b.next = cur_port
        jump_fresh.next = d_session_ok and d_jump
        if d_session_ok and d_data:
            passing_count.next = (cur_count - d_dropped) & 0xFFFF
        else:
            passing_count.next = 0

    feed_a_counts = [getattr(ports, f"a_{name}") for name in FEED_COUNTERS]
    feed_b_counts = [getattr(ports, f"b_{name}") for name in FEED_COUNTERS]
    counters_a = _feed_counters(clk, rst, feed_apply, mine_a, d_data, d_heartbeat, d_end,
                                cur_count, d_session_ok, jump_fresh, passing_count,
                                side_a["end_fire"], side_a["reason"], feed_a_counts)
    counters_b = _feed_counters(clk, rst, feed_apply, mine_b, d_data, d_heartbeat, d_end,
                                cur_count, d_session_ok, jump_fresh, passing_count,
                                side_b["end_fire"], side_b["reason"], feed_b_counts)

    # ---- buffer space: released in order per input ---------------------------
    @always_seq(clk.posedge, reset=rst)
    def free_space():
        step_a = intbv(0)[BEAT_BITS + 1:]
        step_b = intbv(0)[BEAT_BITS + 1:]
        step_a[:] = 0
        step_b[:] = 0
        if a_release and not cur_port:
            step_a[:] = step_a + cur_beats
        if a_release and cur_port:
            step_b[:] = step_b + cur_beats
        if x_release and not x_port:
            step_a[:] = step_a + x_beats
        if x_release and x_port:
            step_b[:] = step_b + x_beats
        rd_base_a.next = rd_base_a + step_a
        rd_base_b.next = rd_base_b + step_b

    # ---- event FIFO and its AXI-Lite face -------------------------------------
    ev_accept = Signal(bool(0))
    event_fifo = _fifo(clk, rst, ev_accept, ev_word, ev_pop, ev_head, ev_level, EVENT_FIFO_DEPTH)

    @always_comb
    def event_accept():
        ev_accept.next = ev_push and not ev_full

    ev_ack_pop = Signal(bool(0))
    ev_record = Signal(intbv(0)[len(m_feed_event.data):])

    @always_comb
    def event_face():
        # AXI-Lite face: only while the stream is off.
        ports.event_valid.next = ev_level != 0 and not ports.event_stream
        acknowledged = ev_level != 0 and not ports.event_stream and ev_taken != ports.event_ack
        ev_ack_pop.next = acknowledged
        ev_pop.next = acknowledged or (ev_level != 0 and ports.event_stream and
                                       m_feed_event.ready)
        ports.event_level.next = ev_level
        # Zeros while the FIFO is empty, never a stale or unwritten entry.
        shown = intbv(0)[EVENT_BITS:]
        if ev_level != 0 and not ports.event_stream:
            shown[:] = ev_head
        ports.event_kind.next = shown[EV_LOST:EV_KIND_LSB]
        ports.event_feed.next = shown[128]
        ports.event_lost_before.next = shown[EV_LOST]
        ports.event_a_hi.next = shown[128:96]
        ports.event_a_lo.next = shown[96:64]
        ports.event_b_hi.next = shown[64:32]
        ports.event_b_lo.next = shown[32:0]

    @always_comb
    def event_record():
        # The record layout of host.feed.records: gap and feed stale carry
        # (expected, received) as (a, b), the other kinds one number in a.
        kind = intbv(0)[4:]
        kind[:] = ev_head[EV_LOST:EV_KIND_LSB]
        word = intbv(0)[len(m_feed_event.data):]
        word[REC_KIND + 4:REC_KIND] = kind
        word[REC_FEED] = ev_head[128]
        word[LOST_BEFORE_BIT] = ev_head[EV_LOST]
        if kind == EV_GAP or kind == EV_FEED_STALE:
            word[REC_SEQ + 64:REC_SEQ] = ev_head[64:0]
            word[REC_EXPECTED + 64:REC_EXPECTED] = ev_head[128:64]
        else:
            word[REC_SEQ + 64:REC_SEQ] = ev_head[128:64]
        ev_record.next = word

    @always_comb
    def event_stream():
        m_feed_event.valid.next = ev_level != 0 and ports.event_stream
        m_feed_event.data.next = ev_record

    @always_seq(clk.posedge, reset=rst)
    def event_acknowledge():
        if ev_ack_pop:
            ev_taken.next = ev_taken + 1

    # ---- extractor ------------------------------------------------------------
    @always_comb
    def stage_mux():
        if x_port:
            stage.next = rdata_b
        else:
            stage.next = rdata_a

    @always_comb
    def effective():
        if x_start:
            e_busy.next = 1
            e_port.next = s_port
            e_state.next = X_MSG
            e_rem.next = s_first_len
            e_index.next = 0
            e_count.next = s_count
            e_drop.next = s_drop
            e_seq.next = s_seq
            e_stale.next = s_stale
            e_queue.next = s_bytes
            # Past the packet's end the start bytes are not its own.
            if s_beats > FIRST_BEAT + 1:
                e_queued.next = START_BYTES
            else:
                e_queued.next = DATA_BYTES - FIRST_SKIP
            e_stage_valid.next = 0
            if s_beats > FETCH_BEAT:
                e_left.next = s_beats - FETCH_BEAT
            else:
                e_left.next = 0
            e_addr.next = s_addr
        else:
            e_busy.next = x_busy and not x_abort
            e_port.next = x_port
            e_state.next = x_state
            e_rem.next = x_rem
            e_index.next = x_index
            e_count.next = x_count
            # In the APPLY after a start on the unjudged head, the judgement
            # is in now.
            if x_fresh:
                e_drop.next = d_dropped
                e_stale.next = start_stale
            else:
                e_drop.next = x_drop
                e_stale.next = x_stale
            e_seq.next = x_seq
            e_queue.next = queue
            e_queued.next = queued
            e_stage_valid.next = stage_valid
            e_left.next = x_left
            e_addr.next = x_addr

    @always_comb
    def output_room():
        # A beat a start on the unjudged head loaded shows once APPLY says its
        # packet passes with that message; until then, or if not, it is not
        # there for the sink and may be replaced.
        shown = o_valid and (not o_spec or d_lead)
        o_shown.next = shown
        out_free.next = not shown or m_axis.tready

    @always_comb
    def plan():
        rem8 = intbv(0)[4:]
        rem8[:] = DATA_BYTES
        if e_rem < DATA_BYTES:
            rem8[:] = e_rem
        take.next = rem8
        emitting = e_index >= e_drop
        emit.next = e_busy and e_state == X_MSG and emitting
        # The staged beat joins the queue first when there is room; this
        # cycle's decisions see the queue with it.
        joining = e_stage_valid and e_queued <= DATA_BYTES
        have = intbv(0)[5:]
        have[:] = e_queued
        if joining:
            have[:] = e_queued + DATA_BYTES
        n = intbv(0)[4:]
        n[:] = 0
        ok = False
        joined = False
        if e_busy:
            if e_state == X_LEN:
                if have >= 2:
                    ok = True
                    n[:] = 2
            else:
                if have >= rem8 and (out_free or not emitting):
                    ok = True
                    n[:] = rem8
                    if e_rem <= DATA_BYTES - 2 and e_index + 1 < e_count and \
                            have >= e_rem + 2:
                        joined = True
                        n[:] = rem8 + 2
        go.next = ok
        merge.next = joined
        consume.next = n
        avail.next = have
        append.next = joining
        fetch.next = e_busy and e_left != 0 and (not e_stage_valid or joining)
        fetch_addr.next = e_addr

    @always_comb
    def queue_view():
        if e_stage_valid and e_queued <= DATA_BYTES:
            combined.next = e_queue | (stage << (8 * e_queued))
        else:
            combined.next = e_queue

    @always_comb
    def ram_reads():
        re_a.next = fetch and not e_port
        re_b.next = fetch and e_port
        raddr_a.next = fetch_addr
        raddr_b.next = fetch_addr

    @always_seq(clk.posedge, reset=rst)
    def extractor():
        x_release.next = 0
        x_spec.next = spec_start
        if x_start:
            x_beats.next = s_beats
        if x_abort:
            # The packet started on does not pass: drop what was cut of it.
            x_busy.next = 0
            if x_busy:
                x_release.next = 1
            stage_valid.next = 0
            queue.next = 0
            queued.next = 0
        elif e_busy:
            x_busy.next = 1
            x_port.next = e_port
            x_count.next = e_count
            x_drop.next = e_drop
            x_seq.next = e_seq
            x_stale.next = e_stale
            x_state.next = e_state
            x_rem.next = e_rem
            x_index.next = e_index
            if fetch:
                x_addr.next = e_addr + 1
                x_left.next = e_left - 1
            else:
                x_addr.next = e_addr
                x_left.next = e_left
            stage_valid.next = fetch or (e_stage_valid and not append)
            queue.next = combined >> (8 * consume)
            queued.next = avail - consume
            if go:
                if e_state == X_LEN:
                    x_rem.next = concat(combined[8:0], combined[16:8])
                    x_state.next = X_MSG
                elif e_rem > DATA_BYTES:
                    x_rem.next = e_rem - DATA_BYTES
                elif merge:
                    after = intbv(0)[16:]
                    after[:] = (combined >> (8 * e_rem)) & 0xFFFF
                    x_rem.next = concat(after[8:0], after[16:8])
                    x_index.next = e_index + 1
                elif e_index + 1 == e_count:
                    x_busy.next = 0
                    x_release.next = 1
                    stage_valid.next = 0
                    queue.next = 0
                    queued.next = 0
                else:
                    x_index.next = e_index + 1
                    x_state.next = X_LEN

    @always_seq(clk.posedge, reset=rst)
    def output_register():
        o_spec.next = 0
        if go and emit:
            o_valid.next = 1
            o_spec.next = spec_start
            o_data.next = combined[DATA_WIDTH:]
            o_keep.next = (1 << take) - 1
            o_last.next = e_rem <= DATA_BYTES
            o_seq.next = e_seq + e_index
            o_index.next = e_index
            o_feed.next = e_port
            o_stale.next = e_stale
        elif out_free:
            o_valid.next = 0
        elif o_spec:
            # Shown in APPLY and still waiting: its stale bit is known now.
            o_stale.next = start_stale

    @always_comb
    def drive_output():
        m_axis.tvalid.next = o_shown
        m_axis.tdata.next = o_data
        m_axis.tkeep.next = o_keep
        m_axis.tlast.next = o_last
        if o_spec:
            m_axis.tuser.next = concat(start_stale, o_feed, o_index, o_seq)
        else:
            m_axis.tuser.next = concat(o_stale, o_feed, o_index, o_seq)

    # ---- registers ------------------------------------------------------------
    @always_comb
    def status():
        ports.session_valid.next = session_valid or ports.session_from_register
        ports.started.next = started
        ports.end_of_session.next = end_seen
        ports.feed_a_stale.next = stale_a
        ports.feed_b_stale.next = stale_b
        ports.stream_stale_set.next = gap_shift
        ports.session0.next = active_session[80:48]
        ports.session1.next = active_session[48:16]
        ports.session2.next = active_session[16:0]
        ports.next_seq_lo.next = next_seq[32:0]
        ports.next_seq_hi.next = next_seq[64:32]
        ports.missing_lo.next = missing[32:0]
        ports.missing_hi.next = missing[64:32]

    return (registers, parts, tickets, push_words, ticketing, slots, overlaps,
            adders, sessions, choose, head_fields, launch, start_source, event_out, gap_control,
            arbiter,
            feed_flags, counters_a, counters_b, free_space, event_fifo, event_accept, event_face,
            event_record, event_stream, event_acknowledge,
            stage_mux, effective, output_room, plan, queue_view, ram_reads, extractor,
            output_register, drive_output, status)
