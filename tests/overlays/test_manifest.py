"""Overlay manifests: written beside the bitstream, verified, and a tampered
or foreign bitstream is caught."""
import json

import pytest

from overlays.manifest import (ManifestError, build_manifest, part_matches, read_bit_header,
                               verify_manifest, write_manifest)
from rtl.regmap.map import MAP_VERSION


def bit_file(path, part="xck26-sfvc784-2LV-c", version="2024.2", body=b"\xaa\x99\x55\x66" * 64):
    def field(key, text):
        raw = text.encode() + b"\x00"
        return key.encode() + len(raw).to_bytes(2, "big") + raw
    header = (b"\x00\x09" + bytes.fromhex("0ff00ff00ff00ff000") + b"\x00\x01"
              + field("a", f"zynqmm_wrapper;UserID=0XFFFFFFFF;Version={version}")
              + field("b", part) + field("c", "2026/01/02") + field("d", "03:04:05")
              + b"e" + len(body).to_bytes(4, "big"))
    path.write_bytes(header + body)
    return path


@pytest.fixture
def built(tmp_path):
    bit = bit_file(tmp_path / "zynqmm.bit")
    hwh = tmp_path / "zynqmm.hwh"
    hwh.write_text("<EDKSYSTEM/>\n")
    return bit, hwh


def test_header_is_parsed(built):
    header = read_bit_header(built[0])
    assert header.part == "xck26-sfvc784-2LV-c" and header.tool_version == "2024.2"
    assert header.date == "2026/01/02"


def test_written_and_verified(built):
    bit, hwh = built
    path = write_manifest(bit, hwh, "kr260", "xck26-sfvc784-2LV-c")
    assert path == bit.with_suffix(".json")
    manifest = json.loads(path.read_text())
    assert manifest["map_version"] == f"0x{MAP_VERSION:08x}"
    assert manifest["board"] == "kr260" and manifest["tools"]["vivado"] == "2024.2"
    assert len(manifest["bitstream"]["sha256"]) == 64 and manifest["git_revision"]
    assert verify_manifest(path)["hwh"]["file"] == "zynqmm.hwh"


def test_tampered_bitstream_is_detected(built):
    bit, hwh = built
    path = write_manifest(bit, hwh, "kr260", "xck26-sfvc784-2LV-c")
    data = bytearray(bit.read_bytes())
    data[-1] ^= 0x01
    bit.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="bitstream: zynqmm.bit sha256 differs"):
        verify_manifest(path)


def test_missing_hwh_and_other_map_version(built):
    bit, hwh = built
    path = write_manifest(bit, hwh, "kr260", "xck26-sfvc784-2LV-c")
    with pytest.raises(ManifestError, match="map_version"):
        verify_manifest(path, expected_map_version=MAP_VERSION ^ 0xFFFF)
    hwh.unlink()
    with pytest.raises(ManifestError, match="hwh: .* is missing"):
        verify_manifest(path)


def test_foreign_or_broken_bitstream_is_refused(tmp_path, built):
    _, hwh = built
    other = bit_file(tmp_path / "other.bit", part="7z020clg400")
    with pytest.raises(ManifestError, match="built for part 7z020clg400"):
        build_manifest(other, hwh, "kr260", "xck26-sfvc784-2LV-c")
    assert build_manifest(other, hwh, "pynqz2", "xc7z020clg400-1")["part"] == "xc7z020clg400-1"
    junk = tmp_path / "junk.bit"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ManifestError, match="not a Xilinx .bit"):
        read_bit_header(junk)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ManifestError, match="unreadable"):
        verify_manifest(tmp_path / "bad.json")


def test_part_matching():
    assert part_matches("7z020clg400", "xc7z020clg400-1")
    assert part_matches("xczu9eg-ffvb1156-2-e", "xczu9eg-ffvb1156-2-e")
    assert not part_matches("7z010clg400", "xc7z020clg400-1")
    assert not part_matches("", "xc7z020clg400-1")
