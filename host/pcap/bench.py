"""``python -m host.pcap.bench [capture]``: packets/s of the UDP fast path.

Without a capture it writes a temporary pcap of ``--packets`` frames with
``--payload-len``-byte UDP payloads and reads it back; prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from host.pcap.fast import bench_read, write_bench_capture
from host.pcap.streams import DEFAULT_CHUNK_BYTES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the pcap UDP fast path.")
    parser.add_argument("capture", nargs="?", help="capture to read (default: generate one)")
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--payload-len", type=int, default=100)
    parser.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.capture
        if path is None:
            path = os.path.join(tmp, "bench.pcap")
            write_bench_capture(path, args.packets, args.payload_len)
        result = bench_read(path, args.chunk_bytes)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
