"""The replay harness's stimulus file: what to write over AXI-Lite, what to
read back at the end, how to pace the streams, and every frame with its feed.

Little-endian binary, one file per run (``harness.cpp`` maps it whole)::

    header   magic "ZMREPLAY", version, header size, seed, source pause and
             sink pause (probability per cycle x 2**32), watchdog cycles,
             end-quiet cycles, cycle limit, counts of writes, reads, frames
    writes   (u32 address, u32 value) each
    reads    u32 address each
    frames   u8 feed, u8 flags, u16 error beat, u32 length, the frame's bytes

Flags: ``FLAG_ERROR`` raises ``tuser`` on the error beat (``ERROR_ON_LAST_BEAT``
for the last one), the MAC's frame-error flag; ``FLAG_BARRIER`` holds the
frame until both inputs are idle and the path has been quiet for the
end-quiet cycles, and starts a new statistics window (throughput runs
measure only their last window).

Captures become stimuli without a Python object per frame: the capture's
record index and the fast UDP path (:mod:`host.pcap.fast`, the acceptance
rules of :func:`host.pcap.frames.parse_frame`) decide each frame's feed by
destination address, as :func:`rtl.feed_path.equivalence.capture_frames` does
(frames of no feed's address, and frames that are not IPv4/UDP, go to feed A,
whose filter drops them), and a numba kernel copies the frames out.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from numba import njit

from host.pcap.fast import udp_batch_from_records
from host.pcap.frames import REJECT_REASONS
from host.pcap.reader import LINKTYPE_ETHERNET, RecordReader
from rtl.feed_path.model import FEED_A, Frame

MAGIC = b"ZMREPLAY"
VERSION = 1
HEADER = struct.Struct("<8sIIQIIQQQIIQ")
FRAME_HEADER = struct.Struct("<BBHI")
FLAG_ERROR = 1
FLAG_BARRIER = 2
ERROR_ON_LAST_BEAT = 0xFFFF
HEADER_FRAMES_OFFSET = HEADER.size - 8


@dataclass(frozen=True)
class RunOptions:
    """How the harness paces a run."""

    seed: int = 1
    source_pause: float = 0.0       # chance a free input leaves tvalid low a cycle
    sink_pause: float = 0.0         # chance m_axis_tready is low a cycle; 1: never ready
    # No beat in or out for this long, with frames left, is a deadlock.  Far
    # above the longest legitimate silence: an order-table refill scan.
    watchdog_cycles: int = 200_000
    # The path counts as drained after this many cycles without activity
    # (longer than a refill scan, during which nothing moves).
    end_quiet_cycles: int = 3000
    max_cycles: int = 0             # 0: no limit

    def __post_init__(self):
        if not 0.0 <= self.source_pause < 1.0:
            raise ValueError(f"source_pause must be in [0, 1), got {self.source_pause}")
        if not 0.0 <= self.sink_pause <= 1.0:
            raise ValueError(f"sink_pause must be in [0, 1], got {self.sink_pause}")
        if self.watchdog_cycles <= self.end_quiet_cycles:
            raise ValueError("the watchdog must outlast the end-quiet wait")


def _probability(p: float) -> int:
    """p x 2**32 for the harness's random draws; 0xFFFFFFFF is kept for 1 (always)."""
    return 0xFFFF_FFFF if p >= 1.0 else min(int(p * (1 << 32)), 0xFFFF_FFFE)


class StimulusWriter:
    """Writes a stimulus file; frames are appended, the count is patched at
    :meth:`close`."""

    def __init__(self, path: str | Path, writes: Sequence[tuple[int, int]],
                 reads: Sequence[int], options: RunOptions = RunOptions()):
        self.path = Path(path)
        self.frames = 0
        self._file = self.path.open("wb")
        self._file.write(HEADER.pack(MAGIC, VERSION, HEADER.size, options.seed,
                                     _probability(options.source_pause),
                                     _probability(options.sink_pause), options.watchdog_cycles,
                                     options.end_quiet_cycles, options.max_cycles, len(writes),
                                     len(reads), 0))
        for address, value in writes:
            self._file.write(struct.pack("<II", address, value & 0xFFFF_FFFF))
        for address in reads:
            self._file.write(struct.pack("<I", address))

    def add(self, feed: int, data: bytes, error: bool = False, error_beat: int | None = None,
            barrier: bool = False) -> None:
        if not data:
            raise ValueError("a frame has at least one byte")
        if feed not in (0, 1):
            raise ValueError(f"feed {feed}: 0 (A) or 1 (B)")
        flags = (FLAG_ERROR if error else 0) | (FLAG_BARRIER if barrier else 0)
        beat = ERROR_ON_LAST_BEAT if error_beat is None else error_beat
        if error and beat != ERROR_ON_LAST_BEAT and not 0 <= beat < (len(data) + 7) // 8:
            raise ValueError(f"error beat {beat} outside a {len(data)}-byte frame")
        self._file.write(FRAME_HEADER.pack(feed, flags, beat, len(data)))
        self._file.write(data)
        self.frames += 1

    def add_packed(self, packed: np.ndarray, count: int) -> None:
        """Frames already in the file's frame layout (see :func:`_pack_frames`)."""
        self._file.write(memoryview(packed))
        self.frames += count

    def close(self) -> Path:
        if not self._file.closed:
            self._file.seek(HEADER_FRAMES_OFFSET)
            self._file.write(struct.pack("<Q", self.frames))
            self._file.close()
        return self.path

    def __enter__(self) -> "StimulusWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class StimulusIndex:
    """A stimulus file mapped for reading: header fields and per-frame arrays."""

    path: Path
    writes: list[tuple[int, int]]
    reads: list[int]
    options: RunOptions
    feed: np.ndarray         # uint8
    flags: np.ndarray        # uint8
    error_beat: np.ndarray   # uint16
    offset: np.ndarray       # int64, first byte of the frame in the file
    length: np.ndarray       # uint32
    buf: np.ndarray          # the whole file, uint8

    def __len__(self) -> int:
        return len(self.feed)

    def frames(self) -> Iterator[Frame]:
        """The frames as the model takes them (an error anywhere in a frame is
        a frame error, whatever beat carried it)."""
        buf = self.buf
        for feed, flags, off, length in zip(self.feed.tolist(), self.flags.tolist(),
                                            self.offset.tolist(), self.length.tolist()):
            yield Frame(feed, buf[off:off + length].tobytes(), bool(flags & FLAG_ERROR))


@njit(cache=True)
def _index_frames(buf, pos, count, feed, flags, error_beat, offset, length):
    end = buf.shape[0]
    for i in range(count):
        if pos + 8 > end:
            return -1
        feed[i] = buf[pos]
        flags[i] = buf[pos + 1]
        error_beat[i] = np.uint16(buf[pos + 2]) | (np.uint16(buf[pos + 3]) << np.uint16(8))
        n = (np.int64(buf[pos + 4]) | (np.int64(buf[pos + 5]) << 8)
             | (np.int64(buf[pos + 6]) << 16) | (np.int64(buf[pos + 7]) << 24))
        offset[i] = pos + 8
        length[i] = n
        pos += 8 + n
    return pos


def read_stimulus(path: str | Path) -> StimulusIndex:
    path = Path(path)
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    buf = np.frombuffer(mapped, np.uint8)
    (magic, version, header_bytes, seed, source_pause, sink_pause, watchdog, end_quiet,
     max_cycles, n_writes, n_reads, n_frames) = HEADER.unpack_from(mapped, 0)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"{path}: not a version {VERSION} replay stimulus")
    pos = header_bytes
    writes = [struct.unpack_from("<II", mapped, pos + 8 * i) for i in range(n_writes)]
    pos += 8 * n_writes
    reads = list(struct.unpack_from(f"<{n_reads}I", mapped, pos))
    pos += 4 * n_reads
    arrays = (np.empty(n_frames, np.uint8), np.empty(n_frames, np.uint8),
              np.empty(n_frames, np.uint16), np.empty(n_frames, np.int64),
              np.empty(n_frames, np.uint32))
    end = _index_frames(buf, pos, n_frames, *arrays)
    if end != len(buf):
        raise ValueError(f"{path}: frame section does not end at the end of the file")
    options = RunOptions(seed, source_pause / (1 << 32),
                         1.0 if sink_pause == 0xFFFF_FFFF else sink_pause / (1 << 32), watchdog,
                         end_quiet, max_cycles)
    return StimulusIndex(path, writes, reads, options, *arrays, buf)


# -- captures --------------------------------------------------------------------------------

@njit(cache=True)
def _pack_frames(buf, rec_off, rec_caplen, feed, keep, out):
    """Frames ``keep`` of a chunk into ``out`` in the stimulus frame layout;
    returns the bytes written."""
    p = 0
    for i in range(rec_off.shape[0]):
        if not keep[i]:
            continue
        n = rec_caplen[i]
        out[p] = feed[i]
        out[p + 1] = 0
        out[p + 2] = 0xFF
        out[p + 3] = 0xFF
        out[p + 4] = n & 0xFF
        out[p + 5] = (n >> 8) & 0xFF
        out[p + 6] = (n >> 16) & 0xFF
        out[p + 7] = (n >> 24) & 0xFF
        off = rec_off[i]
        for k in range(n):
            out[p + 8 + k] = buf[off + k]
        p += 8 + n
    return p


@njit(cache=True)
def _mold_span(buf, payload_off, payload_len, first, last):
    """Per accepted UDP packet: the first and last sequence numbers a
    MoldUDP64 data packet carries, or 0 and 0 for anything else."""
    for k in range(payload_off.shape[0]):
        first[k] = 0
        last[k] = 0
        if payload_len[k] < 20:
            continue
        p = payload_off[k]
        seq = np.uint64(0)
        for j in range(8):
            seq = (seq << np.uint64(8)) | np.uint64(buf[p + 10 + j])
        count = (np.int64(buf[p + 18]) << 8) | np.int64(buf[p + 19])
        if 0 < count < 0xFFFF and seq > 0:
            first[k] = seq
            last[k] = seq + np.uint64(count - 1)


@dataclass
class CaptureStimulus:
    path: Path
    frames: int
    frames_by_feed: tuple[int, int]
    last_seq: int      # highest MoldUDP64 sequence number carried (0: none seen)


def capture_stimulus(capture: str | Path, out: str | Path,
                     addresses: dict[tuple[int, int], int], writes: Sequence[tuple[int, int]],
                     reads: Sequence[int], options: RunOptions = RunOptions(),
                     messages: int | None = None) -> CaptureStimulus:
    """Every frame of ``capture`` on its feed's input.  With ``messages``, only
    the frames up to the first one carrying sequence number
    ``first + messages - 1`` are kept (``first``: the first data packet's):
    the prefix of the day that holds its first ``messages`` messages."""
    reader = RecordReader(capture)
    reasons = np.zeros(len(REJECT_REASONS) + 1, np.int64)
    by_feed = [0, 0]
    first_seq: int | None = None
    last_seq = 0
    done = False
    with StimulusWriter(out, writes, reads, options) as writer:
        for chunk in reader.record_chunks(require_linktype=LINKTYPE_ETHERNET):
            n = len(chunk)
            feed = np.full(n, FEED_A, np.uint8)
            batch = udp_batch_from_records(chunk, reasons)
            local = batch.frame_index - chunk.rec_frame_index[0]
            for (ip, port), f in addresses.items():
                hit = (batch.dst_ip == ip) & (batch.dst_port == port)
                feed[local[hit]] = f
            keep = np.ones(n, np.bool_)
            firsts = np.empty(len(batch), np.uint64)
            lasts = np.empty(len(batch), np.uint64)
            _mold_span(batch.buf, batch.payload_off, batch.payload_len, firsts, lasts)
            if messages is not None and lasts.any():
                if first_seq is None:
                    first_seq = int(firsts[np.nonzero(lasts)[0][0]])
                reached = np.nonzero(lasts >= first_seq + messages - 1)[0]
                if len(reached):
                    keep[int(local[reached[0]]) + 1:] = False
                    done = True
            last_seq = max(last_seq, int(lasts[keep[local]].max(initial=0)))
            out_buf = np.empty(int(chunk.rec_caplen[keep].sum()) + 8 * int(keep.sum()), np.uint8)
            written = _pack_frames(chunk.buf, chunk.rec_off, chunk.rec_caplen, feed, keep, out_buf)
            writer.add_packed(out_buf[:written], int(keep.sum()))
            for f in (0, 1):
                by_feed[f] += int(np.count_nonzero(feed[keep] == f))
            if done:
                break
        frames = writer.frames
    return CaptureStimulus(Path(out), frames, (by_feed[0], by_feed[1]), last_seq)

