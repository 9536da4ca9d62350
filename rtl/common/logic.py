"""Small pieces of logic the fabric's blocks share: signal and record-word
helpers, a 32-bit event counter, a plain assignment, lowest-set-bit and
one-hot encoders built shallow for the LUT depth they give, field selects,
and the mark for a deliberately unread signal."""
from __future__ import annotations

from myhdl import ConcatSignal, Signal, always_comb, always_seq, block, instance, intbv


def bits(width: int, value: int = 0):
    return Signal(bool(value)) if width == 1 else Signal(intbv(value)[width:])


def record_word(parts, total_bits: int):
    """ConcatSignal of ``(bit_offset, width, source)`` parts (sources as
    narrow as they like), zero elsewhere: a little-endian record as an int."""
    pieces, top = [], total_bits
    for lsb, width, source in sorted(parts, key=lambda p: p[0], reverse=True):
        if lsb + width < top:
            pieces.append(intbv(0)[top - lsb - width:])
        if len(source) < width:
            pieces.append(intbv(0)[width - len(source):])
        pieces.append(source)
        top = lsb
    if top:
        pieces.append(intbv(0)[top:])
    return ConcatSignal(*pieces)


def offset_bits(dtype, name: str, element: int = 0) -> tuple[int, int]:
    base_dtype, offset = dtype.fields[name][:2]
    size = base_dtype.base.itemsize
    return 8 * (offset + element * size), 8 * size


@block
def counter(clk, rst, pulse, count):
    @always_seq(clk.posedge, reset=rst)
    def counting():
        if pulse:
            count.next = (count + 1) & 0xFFFFFFFF

    return counting


@block
def drive(source, target):
    @always_comb
    def assign():
        target.next = source

    return assign


@block
def one_hot_index(vector, width, any_set, index):
    """Index of the set bit of ``vector``, which has at most one: each index
    bit an OR, where a priority encoder would be a chain.  ``any_set`` may be
    None where the caller has that flag already."""
    @always_comb
    def encode():
        found = intbv(0)[len(index):]
        for i in range(width):
            if vector[i]:
                found[:] = found | i
        index.next = found

    if any_set is None:
        return encode

    @always_comb
    def flag():
        any_set.next = vector != 0

    return encode, flag


@block
def lowest_set(vector, width, any_set, onehot):
    """The lowest set bit of ``vector`` alone (one-hot, zero when none).  A
    bit is it when no bit below it in its group of eight is set and no lower
    group has one: a few shallow ORs, where a running "seen" flag would be a
    chain as long as the vector."""
    groups = (width + 7) // 8

    @always_comb
    def isolate():
        any_set.next = vector != 0
        occupied = intbv(0)[groups:]
        for g in range(groups):
            if ((vector >> (8 * g)) & 0xFF) != 0:
                occupied[g] = 1
        pick = intbv(0)[width:]
        for i in range(width):
            if vector[i] and (occupied & ((1 << (i // 8)) - 1)) == 0 and \
                    ((vector >> (8 * (i // 8))) & ((1 << (i % 8)) - 1)) == 0:
                pick[i] = 1
        onehot.next = pick

    return isolate


@block
def first_set(vector, width, any_set, index):
    """Index of the lowest set bit of ``vector``: that bit isolated, then
    encoded as a one-hot vector, where testing the bits in turn would be a
    chain ``width`` long (and ``v & -v`` a carry chain as long)."""
    lowest = Signal(intbv(0)[width:])
    return (lowest_set(vector, width, any_set, lowest),
            one_hot_index(lowest, width, None, index))


@block
def pick_field(word, onehot, count, stride, offset, out):
    """``word[stride*i + offset +: len(out)]`` for the one bit ``i`` set in
    ``onehot`` (zero when none): an AND-OR over the ``count`` fields, where a
    shift by a computed amount would be a full barrel shifter of ``word``."""
    mask = (1 << len(out)) - 1

    @always_comb
    def pick():
        field = intbv(0)[len(out):]
        for i in range(count):
            if onehot[i]:
                field[:] = field | ((word >> (stride * i + offset)) & mask)
        out.next = field

    return pick


@block
def select(word, index, stride, offset, out):
    """``word[stride*index + offset +: len(out)]``."""
    mask = (1 << len(out)) - 1

    @always_comb
    def shift():
        out.next = (word >> (stride * index + offset)) & mask

    return shift


@block
def unused(sig, name: str):
    """Marks ``sig`` as deliberately unread (fields of a shared word a block
    has no use for), the way Verilator's lint expects: a wire reading every
    bit, itself exempt from the unused-signal check."""
    sig.read = True

    @instance
    def keep():
        while True:
            yield sig

    return keep


unused.verilog_code = """// verilator lint_off UNUSEDSIGNAL
wire unused_$name = ^$sig;
// verilator lint_on UNUSEDSIGNAL"""
