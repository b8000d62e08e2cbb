"""SPDY/3.1 framing: spec byte layouts, the zlib dictionary, real kubectl 1.32 frames, limits."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from shoal.kube import spdy

# Captured from kubectl v1.32.4 port-forward (the first bytes of its SPDY session, one
# forwarded connection): SYN_STREAM 1 (error), FIN on 1, SYN_STREAM 3 (data), an HTTP request
# on 3 (here shortened to "HELLO"), RST_STREAM 3 CANCEL, GOAWAY.  The second SYN_STREAM's header block only decompresses
# after the first: one zlib stream per direction.
KUBECTL = [bytes.fromhex(h) for h in (
    "800300010000003f0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45a024"
    "cc6a6a69660a2a85388b20f198094adf8c0600000000ffff",
    "0000000101000000",
    "800300010000001800000003000000000000c2aa1b54102512a119000000ffff",
    "000000030000000548454c4c4f",
    "80030003000000080000000300000005",
    "80030007000000080000000000000000",
)]


def test_dictionary_is_the_spdy3_one() -> None:
    # 1423 bytes; the digest is of Go's spdy/dictionary.go (the draft's §2.6.10.1 byte table).
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert hashlib.sha256(spdy.HEADER_DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")
    assert spdy.HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.HEADER_DICTIONARY.endswith(b"utf-,*,enq=0.")


def test_decodes_kubectls_frames_in_order() -> None:
    codec = spdy.Codec()
    frames = [frame for chunk in KUBECTL for frame in codec.feed(chunk)]
    assert frames == [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["59655"], "requestid": ["0"]}),
        spdy.Data(1, b"", spdy.FLAG_FIN),
        spdy.SynStream(3, {"streamtype": ["data"], "port": ["59655"], "requestid": ["0"]}),
        spdy.Data(3, b"HELLO"),
        spdy.RstStream(3, spdy.CANCEL),
        spdy.GoAway(0, spdy.GOAWAY_OK),
    ]


def test_the_second_header_block_needs_the_first() -> None:
    with pytest.raises(spdy.ProtocolError, match="decompress"):
        spdy.Codec().feed(KUBECTL[2])


def test_input_split_anywhere_gives_the_same_frames() -> None:
    stream = b"".join(KUBECTL)
    whole = spdy.Codec().feed(stream)
    for size in (1, 3, 7, 64):
        codec = spdy.Codec()
        pieces = [frame for i in range(0, len(stream), size) for frame in codec.feed(stream[i:i + size])]
        assert pieces == whole


@pytest.mark.parametrize(("frame", "wire"), [
    (spdy.Ping(1), "80030006" "00000004" "00000001"),
    (spdy.RstStream(3, spdy.CANCEL), "80030003" "00000008" "00000003" "00000005"),
    (spdy.GoAway(5, spdy.GOAWAY_PROTOCOL_ERROR), "80030007" "00000008" "00000005" "00000001"),
    (spdy.WindowUpdate(1, 65536), "80030009" "00000008" "00000001" "00010000"),
    (spdy.Settings(((1, 7, 65536), (0, 4, 100))),
     "80030004" "00000014" "00000002" "01000007" "00010000" "00000004" "00000064"),
    (spdy.Data(1, b"abc", spdy.FLAG_FIN), "00000001" "01000003" "616263"),
    (spdy.Data(0x7FFFFFFF, b""), "7fffffff" "00000000"),
])
def test_fixed_frames_match_the_spec_layout(frame: spdy.Frame, wire: str) -> None:
    encoded = spdy.Codec().encode(frame)
    assert encoded.hex() == wire
    assert spdy.Codec().feed(encoded) == [frame]


def test_header_frames_round_trip_through_one_zlib_stream() -> None:
    sender, receiver = spdy.Codec(), spdy.Codec()
    frames: list[spdy.Frame] = [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["80"]}, priority=3, associated_to=0),
        spdy.SynReply(1, {}),
        spdy.SynStream(3, {"streamtype": ["data"], "port": ["80"], "multi": ["a", "b"]}, flags=spdy.FLAG_FIN),
        spdy.HeadersFrame(3, {"x-more": ["1"]}, spdy.FLAG_FIN),
        spdy.SynReply(3, {"status": ["200 OK"]}, spdy.FLAG_FIN),
    ]
    wire = b"".join(sender.encode(frame) for frame in frames)
    assert receiver.feed(wire) == frames


def test_header_block_layout_and_lowercasing() -> None:
    block = spdy.encode_header_block({"Port": ["80"], "v": ["a", "b"]})
    assert block == (struct.pack(">I", 2) + struct.pack(">I", 4) + b"port" + struct.pack(">I", 2) + b"80"
                     + struct.pack(">I", 1) + b"v" + struct.pack(">I", 3) + b"a\x00b")
    assert spdy.decode_header_block(block) == {"port": ["80"], "v": ["a", "b"]}
    with pytest.raises(spdy.ProtocolError, match="truncated"):
        spdy.decode_header_block(block[:-1])
    with pytest.raises(spdy.ProtocolError, match="after the header block"):
        spdy.decode_header_block(block + b"x")


def test_a_syn_stream_compressed_as_go_does_decodes() -> None:
    # Go's framer: zlib.NewWriterLevelDict(BestCompression, dictionary), a sync flush per block.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=spdy.HEADER_DICTIONARY)
    block = spdy.encode_header_block({"streamtype": ["data"], "port": ["8080"], "requestid": ["7"]})
    compressed = compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">IIBB", 5, 0, 0, 0) + compressed
    wire = struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(body)) + body
    (frame,) = spdy.Codec().feed(wire)
    assert frame == spdy.SynStream(5, {"streamtype": ["data"], "port": ["8080"], "requestid": ["7"]})


def test_unknown_control_frames_are_returned_to_be_ignored() -> None:
    wire = struct.pack(">HHI", 0x8003, 0x00FF, 3) + b"xyz"
    assert spdy.Codec().feed(wire) == [spdy.Unknown(0xFF, 0, b"xyz")]


@pytest.mark.parametrize(("wire", "message"), [
    (struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\x00\x00\x00\x01", "version 2"),
    (struct.pack(">II", 0, 0), "stream 0"),
    (struct.pack(">HHI", 0x8003, spdy.PING, 4) + b"\x00\x00\x00\x00", "PING with id 0"),
    (struct.pack(">HHI", 0x8003, spdy.PING, 5) + b"\x00\x00\x00\x01\x00", "not 4"),
    (struct.pack(">HHI", 0x8003, spdy.RST_STREAM, 8) + b"\x00\x00\x00\x01\x00\x00\x00\x00", "status 0"),
    (struct.pack(">HHI", 0x8003, spdy.SETTINGS, 8) + struct.pack(">II", 1, 0), "for 1 entries"),
    (struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 4) + b"\x00\x00\x00\x01", "only 4 bytes"),
    (struct.pack(">HHI", 0x8003, spdy.SYN_REPLY, 6) + b"\x00\x00\x00\x01zz", "decompress"),
])
def test_malformed_frames_are_protocol_errors(wire: bytes, message: str) -> None:
    with pytest.raises(spdy.ProtocolError, match=message):
        spdy.Codec().feed(wire)


def test_a_header_bomb_is_refused() -> None:
    sender, receiver = spdy.Codec(), spdy.Codec(max_header_bytes=64 * 1024)
    wire = sender.encode(spdy.SynStream(1, {"big": ["x" * 100_000]}))
    assert len(wire) < 2000  # compresses well: the decompressed size is what is limited
    with pytest.raises(spdy.ProtocolError, match="larger than 65536"):
        receiver.feed(wire)


def test_encoding_refuses_what_the_wire_cannot_carry() -> None:
    codec = spdy.Codec()
    with pytest.raises(ValueError, match="stream id"):
        codec.encode(spdy.Data(0, b""))
    with pytest.raises(ValueError, match="stream id"):
        codec.encode(spdy.SynReply(1 << 31, {}))
    with pytest.raises(ValueError, match="over"):
        codec.encode(spdy.Data(1, bytes(spdy.MAX_FRAME_LENGTH + 1)))
    with pytest.raises(ValueError, match="status 0"):
        codec.encode(spdy.RstStream(1, 0))
    with pytest.raises(ValueError, match="ping id"):
        codec.encode(spdy.Ping(0))
