"""Frame filter in MyHDL: Ethernet/VLAN/IPv4/UDP in, matching UDP payloads out.

Behaviour is :mod:`rtl.frame_filter.model`; this is how the fabric gets it.

Header fields are captured as 16-bit words by their index in the frame: every
field the filter needs is a whole big-endian word at an even offset, and an
even-aligned word never straddles two 8-byte beats, so each field comes from
one lane of one beat.  Where the IP header starts (word 7, 9 or 11) is known
in the beat holding the last tag's ethertype, which is also the beat holding
the first IP word, so that one beat uses the freshly decoded position.  The
header checksum accumulates the IP header's words lane by lane as they pass.

The UDP payload starts 2 or 6 bytes into a beat.  From the beat after that
one, each accepted beat forms one output beat from the upper lanes of the
previous beat and the lower lanes of this one; a tail left in the last beat is
formed the cycle after ``tlast``.  The filter cuts through: everything that
decides whether a frame is wanted (tags, IPv4 header and checksum, UDP
header, the filter table, the payload's size) lies before its payload, so
from then on each output beat goes out the cycle after the input beat that
completes it.  Only what can show at the frame's end (``tuser``, which may
come with any beat, and a frame shorter than its IP total length) is left,
so the payload's final beat waits for the verdict the cycle after ``tlast``,
which also bumps exactly one counter: the final beat leaves with ``tlast``
and ``tdrop`` = the frame was dropped after all (its reason counted here).  A frame whose
payload already started out is always closed that way, with a final beat of
whatever is at hand if it was cut short; the next stage discards a packet
ending in ``tdrop`` without a trace.  A frame found unwanted in its headers
sends nothing.  The match is held from the frame's first payload beat, so a
table write cannot cut a frame in flight short.

There is no payload buffer: the output register is the only storage, and
input ``tready`` falls only while an output beat is waiting to leave
(``m_axis`` held off) and this beat would form another, or while the
verdict's final beat waits for it.  With the output free, the payload's last
beat is valid :data:`LATENCY_CYCLES` after the input beat holding the
frame's last byte.
"""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, concat, downrange, intbv

from host.pcap.frames import ETHERTYPE_IPV4, IPPROTO_UDP, TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY
from rtl.common.axil import AxiLite
from rtl.common.axis import DATA_BYTES, DATA_WIDTH, AxiStream, keep_counter
from rtl.frame_filter.model import (COUNTERS, DROP_REASONS, FILTER_ENTRIES, IP_FRAGMENT_BITS,
                                    PAYLOAD_FIFO_BEATS, REASON_CODE)
from rtl.regmap.hdl import RegisterPorts, regfile
from rtl.regmap.map import FRAME_FILTER

DEST_WIDTH = max(1, (FILTER_ENTRIES - 1).bit_length())
BEAT_BITS = 16
SIZE_BITS = BEAT_BITS + 4
REASON_BITS = max(len(DROP_REASONS).bit_length(), 1)
# Header words lie before word 44 (IP at word 11 at most, 15-word IHL, UDP
# header), i.e. in the first 11 beats; comparisons there use 4 bits of beat.
HEADER_BEATS = 12
# Accepted input beat holding the frame's last byte -> the payload's last beat
# (``tlast``, with the verdict in ``tdrop``) valid, when the output is free:
# the verdict, then the output register.
LATENCY_CYCLES = 2
# An input beat that completes an earlier output beat -> that beat valid.
CUT_THROUGH_CYCLES = 1

# Verdict codes as plain names: the converter cannot look up a dict.
R_PASSED = REASON_CODE["passed"]
R_FRAME_ERROR = REASON_CODE["frame_error"]
R_TRUNCATED = REASON_CODE["truncated"]
R_TOO_MANY_VLANS = REASON_CODE["too_many_vlans"]
R_NOT_IPV4 = REASON_CODE["not_ipv4"]
R_BAD_IP_HEADER = REASON_CODE["bad_ip_header"]
R_BAD_IP_LENGTH = REASON_CODE["bad_ip_length"]
R_BAD_IP_CHECKSUM = REASON_CODE["bad_ip_checksum"]
R_IP_FRAGMENT = REASON_CODE["ip_fragment"]
R_NOT_UDP = REASON_CODE["not_udp"]
R_BAD_UDP_LENGTH = REASON_CODE["bad_udp_length"]
R_EMPTY_PAYLOAD = REASON_CODE["empty_payload"]
R_NO_MATCH = REASON_CODE["no_match"]
R_OVERSIZE = REASON_CODE["oversize"]


@block
def _entry_match(dst_ip, dst_port, entry_ip, entry_port, entry_enable, hit):
    @always_comb
    def compare():
        hit.next = entry_enable and dst_ip == entry_ip and dst_port == entry_port

    return compare


@block
def _reason_counter(clk, rst, end_fire, reason, code, count, seen):
    """Counts verdicts equal to ``code``; ``seen``, if given, pulses with each."""

    @always_seq(clk.posedge, reset=rst)
    def counting():
        if end_fire and reason == code:
            count.next = (count + 1) & 0xFFFFFFFF

    if seen is None:
        return counting

    @always_comb
    def pulse():
        seen.next = end_fire and reason == code

    return pulse, counting


@block
def _frame_counter(clk, rst, end_fire, count):
    @always_seq(clk.posedge, reset=rst)
    def counting():
        if end_fire:
            count.next = (count + 1) & 0xFFFFFFFF

    return counting


class PayloadStream(AxiStream):
    """The filter's output stream: an AXI-Stream with ``tdest`` (the matching
    filter entry) and ``tdrop``, valid with ``tlast``: the frame whose payload
    this was turned out bad at its end (frame error, truncation) and was
    dropped and counted by the filter; whoever takes the stream discards the
    packet.  ``tuser`` stays 0: a frame error never passes the filter."""

    def __init__(self, dest_width: int = DEST_WIDTH):
        super().__init__(dest_width)
        self.tdrop = Signal(bool(0))


@block
def frame_filter(clk, rst, s_axis: AxiStream, m_axis: PayloadStream, s_axil: AxiLite,
                 max_payload_beats: int = PAYLOAD_FIFO_BEATS):
    """The block's top level: ``s_axis`` frames in, ``m_axis`` payloads out
    (``tdest`` = matching filter entry, ``tdrop`` on the last beat = dropped
    at the frame's end), registers on ``s_axil``.  ``max_payload_beats``:
    longer payloads are ``oversize`` (the sequencer's packet limit)."""
    max_payload = max_payload_beats * DATA_BYTES
    ports = RegisterPorts(FRAME_FILTER)
    registers = regfile(clk, rst, s_axil, ports, FRAME_FILTER,
                        {"payload_fifo_beats": max_payload_beats})

    # ---- the beat on the input, as big-endian words -------------------
    tdata = s_axis.tdata
    words = Signal(intbv(0)[DATA_WIDTH:])  # word l (bytes 2l, 2l+1) in bits 16l+15..16l
    w0, w1, w2, w3 = (Signal(intbv(0)[16:]) for _ in range(4))
    vlan_w0 = Signal(bool(0))
    vlan_w2 = Signal(bool(0))
    keep_bytes = Signal(intbv(0)[4:])

    @always_comb
    def split_words():
        words.next = concat(tdata[56:48], tdata[64:56], tdata[40:32], tdata[48:40],
                            tdata[24:16], tdata[32:24], tdata[8:0], tdata[16:8])

    @always_comb
    def word_lanes():
        w0.next = words[16:0]
        w1.next = words[32:16]
        w2.next = words[48:32]
        w3.next = words[64:48]

    @always_comb
    def tags():
        vlan_w0.next = w0 == TPID_8021Q or w0 == TPID_8021AD or w0 == TPID_QINQ_LEGACY
        vlan_w2.next = w2 == TPID_8021Q or w2 == TPID_8021AD or w2 == TPID_QINQ_LEGACY

    count_keep = keep_counter(s_axis.tkeep, keep_bytes)

    # ---- per-frame state ---------------------------------------------------
    beat = Signal(intbv(0)[BEAT_BITS:])
    frame_error = Signal(bool(0))
    tag0 = Signal(bool(0))        # first ethertype was a TPID
    tag1 = Signal(bool(0))        # second one too
    too_many = Signal(bool(0))    # and a third
    ip_word = Signal(intbv(0)[6:])
    ip_known = Signal(bool(0))
    ethertype = Signal(intbv(0)[16:])
    version = Signal(intbv(0)[4:])
    ihl = Signal(intbv(0)[4:])
    ihl_known = Signal(bool(0))
    total_length = Signal(intbv(0)[16:])
    flags_fragment = Signal(intbv(0)[16:])
    protocol = Signal(intbv(0)[8:])
    dst_ip = Signal(intbv(0)[32:])
    dst_port = Signal(intbv(0)[16:])
    udp_length = Signal(intbv(0)[16:])
    checksum = Signal(intbv(0)[24:])
    may_write = Signal(bool(0))   # the IP and UDP headers let the payload through
    header_clean = Signal(bool(0))
    header_ok = Signal(bool(0))   # header_clean as of the previous beat
    remaining = Signal(intbv(0)[16:])
    prev = Signal(intbv(0)[DATA_WIDTH:])

    # Decoded in the beat that holds it, from the registered state otherwise.
    ip_word_now = Signal(intbv(0)[6:])
    ip_known_now = Signal(bool(0))
    payload_beat = Signal(intbv(0)[4:])
    payload_off6 = Signal(bool(0))

    @always_comb
    def ip_position():
        ip_word_now.next = ip_word
        ip_known_now.next = ip_known
        if beat == 0:
            # The registers still describe the previous frame.
            ip_known_now.next = 0
        elif beat == 1 and not ip_known and not vlan_w2:
            ip_word_now.next = 7
            ip_known_now.next = 1
        elif beat == 2 and tag0 and not ip_known:
            if not vlan_w0:
                ip_word_now.next = 9
                ip_known_now.next = 1
            elif not vlan_w2:
                ip_word_now.next = 11
                ip_known_now.next = 1

    @always_comb
    def payload_position():
        # Payload byte offset 2 * (ip_word + 2 * ihl + 4): beat, and 2 or 6 in it.
        payload_beat.next = (ip_word + 2 * ihl + 4) >> 2
        payload_off6.next = ((ip_word + 2 * ihl + 4) & 3) == 3

    # ---- filter table ----------------------------------------------------
    hits = [Signal(bool(0)) for _ in range(FILTER_ENTRIES)]
    matchers = [
        _entry_match(dst_ip, dst_port, getattr(ports, f"filter{n}_ip"),
                     getattr(ports, f"filter{n}_port"), getattr(ports, f"filter{n}_enable"),
                     hits[n])
        for n in range(FILTER_ENTRIES)
    ]
    hit_vector = ConcatSignal(*reversed(hits))
    matched = Signal(bool(0))
    match_index = Signal(intbv(0)[DEST_WIDTH:])

    @always_comb
    def lowest_hit():
        matched.next = hit_vector != 0
        match_index.next = 0
        for n in downrange(FILTER_ENTRIES):
            if hit_vector[n]:
                match_index.next = n

    # The match is held from the first payload beat on, so software changing
    # the table mid-frame cannot cut a frame short: each frame is judged by
    # the table as it stood when its payload began.
    match_held = Signal(bool(0))
    held_hit = Signal(bool(0))
    held_index = Signal(intbv(0)[DEST_WIDTH:])
    frame_hit = Signal(bool(0))
    frame_index = Signal(intbv(0)[DEST_WIDTH:])

    @always_comb
    def frame_match():
        if match_held:
            frame_hit.next = held_hit
            frame_index.next = held_index
        else:
            frame_hit.next = matched
            frame_index.next = match_index

    # ---- output register and the payload's final beat ------------------
    o_valid = Signal(bool(0))
    o_data = Signal(intbv(0)[DATA_WIDTH:])
    o_m1 = Signal(intbv(0)[3:])       # bytes in the beat, minus one
    o_last = Signal(bool(0))
    o_drop = Signal(bool(0))
    o_dest = Signal(intbv(0)[DEST_WIDTH:])
    out_free = Signal(bool(0))
    # The payload's final beat when it is formed before the frame's end (its
    # last byte in the last beat's low lanes, or padding after it): it waits
    # here for the verdict.
    held_valid = Signal(bool(0))
    held_data = Signal(intbv(0)[DATA_WIDTH:])
    held_m1 = Signal(intbv(0)[3:])
    opened = Signal(bool(0))          # a beat of this frame's payload went out
    formed = Signal(intbv(0)[DATA_WIDTH:])
    tail_data = Signal(intbv(0)[DATA_WIDTH:])
    chunk_m1 = Signal(intbv(0)[3:])   # bytes in this output beat, minus one
    chunk_last = Signal(bool(0))

    @always_comb
    def chunk():
        chunk_last.next = remaining <= 8
        if remaining > 8 or remaining == 0:
            chunk_m1.next = 7
        else:
            chunk_m1.next = remaining - 1

    @always_comb
    def forming():
        if payload_off6:
            formed.next = concat(tdata[48:0], prev[64:48])
            tail_data.next = prev[64:48]
        else:
            formed.next = concat(tdata[16:0], prev[64:16])
            tail_data.next = prev[64:16]

    # ---- frame end -------------------------------------------------------
    end_pending = Signal(bool(0))
    end_in_payload = Signal(bool(0))  # the last beat holds payload bytes
    end_size = Signal(intbv(0)[SIZE_BITS:])
    end_fire = Signal(bool(0))
    closing = Signal(bool(0))
    reason = Signal(intbv(0)[REASON_BITS:])
    beat_writes = Signal(bool(0))
    accept = Signal(bool(0))

    @always_comb
    def tail():
        # Whether the frame gets a final beat: the payload began (a beat went
        # out, the final one is held, or bytes of it are in the last beat).
        # None of the verdict goes into it, which keeps the verdict off
        # tready's path; a frame that began but is dropped still gets its
        # final beat, marked.
        closing.next = opened or held_valid or (end_in_payload and may_write and header_ok and
                                                frame_hit and remaining != 0)

    @always_comb
    def room():
        out_free.next = not o_valid or m_axis.tready

    @always_comb
    def handshake():
        beat_writes.next = may_write and header_ok and frame_hit and beat > payload_beat and \
            remaining != 0
        end_fire.next = end_pending and (not closing or out_free)
        # While the verdict waits for the output nothing comes in (the next
        # frame's first beat comes with it); a beat that completes an output
        # beat needs the register free; the final beat goes to the hold register.
        s_axis.tready.next = not (end_pending and closing and not out_free) and \
            not (may_write and header_ok and frame_hit and beat > payload_beat and
                 not chunk_last and not out_free)

    @always_comb
    def accepted():
        accept.next = s_axis.tvalid and s_axis.tready

    @always_comb
    def verdict():
        ip_bytes = 2 * ip_word
        header_bytes = 4 * ihl
        folded = (checksum & 0xFFFF) + (checksum >> 16)
        if frame_error:
            reason.next = R_FRAME_ERROR
        elif end_size < 14 or (tag0 and end_size < 18) or (tag1 and end_size < 22):
            reason.next = R_TRUNCATED
        elif too_many:
            reason.next = R_TOO_MANY_VLANS
        elif ethertype != ETHERTYPE_IPV4:
            reason.next = R_NOT_IPV4
        elif end_size < ip_bytes + 20:
            reason.next = R_TRUNCATED
        elif version != 4 or ihl < 5:
            reason.next = R_BAD_IP_HEADER
        elif end_size < ip_bytes + header_bytes:
            reason.next = R_TRUNCATED
        elif total_length < header_bytes:
            reason.next = R_BAD_IP_LENGTH
        elif end_size < ip_bytes + total_length:
            reason.next = R_TRUNCATED
        elif ((folded & 0xFFFF) + (folded >> 16)) != 0xFFFF:
            reason.next = R_BAD_IP_CHECKSUM
        elif (flags_fragment & IP_FRAGMENT_BITS) != 0:
            reason.next = R_IP_FRAGMENT
        elif protocol != IPPROTO_UDP:
            reason.next = R_NOT_UDP
        elif total_length < header_bytes + 8 or udp_length < 8 or \
                udp_length > total_length - header_bytes:
            reason.next = R_BAD_UDP_LENGTH
        elif udp_length == 8:
            reason.next = R_EMPTY_PAYLOAD
        elif not frame_hit:
            reason.next = R_NO_MATCH
        elif udp_length - 8 > max_payload:
            reason.next = R_OVERSIZE
        else:
            reason.next = R_PASSED

    @always_comb
    def header_check():
        # The checks of the verdict that the payload's first beat can rely
        # on, apart from those made where the UDP length is captured.  By the
        # payload's first output beat the header checksum is complete (the IP
        # header ends at least five words before the payload begins), so the
        # value registered at the beat before it is the frame's.
        folded = (checksum & 0xFFFF) + (checksum >> 16)
        header_clean.next = not too_many and ethertype == ETHERTYPE_IPV4 and \
            total_length >= 4 * ihl and ((folded & 0xFFFF) + (folded >> 16)) == 0xFFFF and \
            (flags_fragment & IP_FRAGMENT_BITS) == 0

    @always_seq(clk.posedge, reset=rst)
    def parse():
        if end_fire:
            end_pending.next = 0
            held_valid.next = 0
            opened.next = 0

        if accept:
            prev.next = tdata
            b = beat[4:]
            header_ok.next = header_clean and beat != 0
            if beat == 0:
                frame_error.next = s_axis.tuser
                tag0.next = 0
                tag1.next = 0
                too_many.next = 0
                ip_known.next = 0
                ihl_known.next = 0
                may_write.next = 0
                remaining.next = 0
                checksum.next = 0
                match_held.next = 0
            else:
                if s_axis.tuser:
                    frame_error.next = 1
                if beat == 1 and vlan_w2:
                    tag0.next = 1
                if beat == 2 and tag0 and vlan_w0:
                    tag1.next = 1
                    if vlan_w2:
                        too_many.next = 1
                if ip_known_now and not ip_known:
                    ip_known.next = 1
                    ip_word.next = ip_word_now

            if ip_known_now and beat < HEADER_BEATS:
                a = ip_word_now
                # Word-indexed captures: a field at word t is lane t % 4 of beat t // 4.
                if b == (a - 1) >> 2:
                    ethertype.next = (words >> (16 * ((a - 1) & 3))) & 0xFFFF
                if b == a >> 2:
                    version.next = (words >> (16 * (a & 3) + 12)) & 0xF
                    ihl.next = (words >> (16 * (a & 3) + 8)) & 0xF
                    ihl_known.next = 1
                if b == (a + 1) >> 2:
                    total_length.next = (words >> (16 * ((a + 1) & 3))) & 0xFFFF
                if b == (a + 3) >> 2:
                    flags_fragment.next = (words >> (16 * ((a + 3) & 3))) & 0xFFFF
                if b == (a + 4) >> 2:
                    protocol.next = (words >> (16 * ((a + 4) & 3))) & 0xFF
                if b == (a + 8) >> 2:
                    dst_ip.next[32:16] = (words >> (16 * ((a + 8) & 3))) & 0xFFFF
                if b == (a + 9) >> 2:
                    dst_ip.next[16:0] = (words >> (16 * ((a + 9) & 3))) & 0xFFFF
                if ihl_known:
                    u = a + 2 * ihl
                    if b == (u + 1) >> 2:
                        dst_port.next = (words >> (16 * ((u + 1) & 3))) & 0xFFFF
                    if b == (u + 2) >> 2:
                        ulen = (words >> (16 * ((u + 2) & 3))) & 0xFFFF
                        udp_length.next = ulen
                        if version == 4 and ihl >= 5 and protocol == IPPROTO_UDP and \
                                ulen > 8 and ulen - 8 <= max_payload and \
                                total_length >= 4 * ihl + 8 and ulen <= total_length - 4 * ihl:
                            may_write.next = 1
                            remaining.next = ulen - 8
                # The IP header is words a .. a + 2*ihl - 1; until IHL is
                # registered (its own beat) every later lane belongs to it.
                acc = intbv(0)[24:]
                acc[:] = checksum
                if 4 * b >= a and (not ihl_known or 4 * b < a + 2 * ihl):
                    acc[:] = acc + w0
                if 4 * b + 1 >= a and (not ihl_known or 4 * b + 1 < a + 2 * ihl):
                    acc[:] = acc + w1
                if 4 * b + 2 >= a and (not ihl_known or 4 * b + 2 < a + 2 * ihl):
                    acc[:] = acc + w2
                if 4 * b + 3 >= a and (not ihl_known or 4 * b + 3 < a + 2 * ihl):
                    acc[:] = acc + w3
                checksum.next = acc

            if may_write and beat == payload_beat + 1 and not match_held:
                match_held.next = 1
                held_hit.next = matched
                held_index.next = match_index

            if beat_writes:
                if remaining > 8:
                    opened.next = 1
                    remaining.next = remaining - 8
                else:
                    held_valid.next = 1
                    held_data.next = formed
                    held_m1.next = chunk_m1
                    remaining.next = 0

            if s_axis.tlast:
                beat.next = 0
                end_pending.next = 1
                end_size.next = concat(beat, intbv(0)[3:]) + keep_bytes
                end_in_payload.next = beat >= payload_beat
            elif beat != (1 << BEAT_BITS) - 1:
                beat.next = beat + 1

    @always_seq(clk.posedge, reset=rst)
    def output_register():
        # The final beat (the cycle after tlast) and a payload beat never
        # coincide: the beat accepted in a final beat's cycle is a new frame's first.
        if end_fire and closing:
            o_valid.next = 1
            o_last.next = 1
            o_drop.next = reason != R_PASSED
            o_dest.next = frame_index
            if held_valid:
                o_data.next = held_data
                o_m1.next = held_m1
            else:
                # The tail, or for a frame cut short whatever is at hand.
                o_data.next = tail_data
                o_m1.next = chunk_m1
        elif accept and beat_writes and remaining > 8:
            o_valid.next = 1
            o_last.next = 0
            o_drop.next = 0
            o_dest.next = frame_index
            o_data.next = formed
            o_m1.next = 7
        elif m_axis.tready:
            o_valid.next = 0

    @always_comb
    def output():
        m_axis.tvalid.next = o_valid
        m_axis.tdata.next = o_data
        m_axis.tkeep.next = ((1 << (o_m1 + 1)) - 1) & 0xFF
        m_axis.tlast.next = o_last
        m_axis.tdrop.next = o_drop
        m_axis.tdest.next = o_dest
        m_axis.tuser.next = 0

    # ---- counters and sticky drop bits -----------------------------------
    counters = []
    for name in COUNTERS:
        count = getattr(ports, f"count_{name}")
        if name == "frames":
            counters.append(_frame_counter(clk, rst, end_fire, count))
        else:
            seen = None if name == "passed" else getattr(ports, f"seen_{name}_set")
            counters.append(_reason_counter(clk, rst, end_fire, reason, REASON_CODE[name], count, seen))

    return (registers, matchers, counters, split_words, word_lanes, tags, count_keep,
            ip_position, payload_position, lowest_hit, frame_match, chunk, forming, tail,
            header_check, room, handshake, accepted, verdict, parse, output_register, output)
