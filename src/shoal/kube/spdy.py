"""SPDY/3.1 framing, as Go's spdystream (and so kubectl's port-forward) speaks it.

Wire format (draft-mbelshe-httpbis-spdy-00 §2.2, §2.6; all integers big-endian):

* control frame: ``1 | version (15 bits, = 3) | type (16)``, ``flags (8) | length (24)``,
  then ``length`` bytes of type-specific data:

  ===============  ====  =====================================================================
  SYN_STREAM       1     stream id (31), associated-to id (31), priority (3 bits) << 5, slot
                         (8), compressed header block
  SYN_REPLY        2     stream id (31), compressed header block
  RST_STREAM       3     stream id (31), status code (32, never 0)
  SETTINGS         4     count (32), then ``flags (8) | id (24)``, value (32) per entry
  PING             6     id (32, never 0)
  GOAWAY           7     last good stream id (31), status (32)
  HEADERS          8     stream id (31), compressed header block
  WINDOW_UPDATE    9     stream id (31), delta (31)
  ===============  ====  =====================================================================

  Flags: FIN 0x01 and UNIDIRECTIONAL 0x02 (SYN_STREAM); SETTINGS' CLEAR_SETTINGS 0x01.
* data frame: ``0 | stream id (31)``, ``flags (8) | length (24)``, data.  FIN 0x01 ends the
  sender's half of the stream.
* header block: ``count (32)``, then per header ``len (32)``, lower-case name, ``len (32)``,
  value (several values of one name are joined with NUL), zlib-compressed with the SPDY/3
  dictionary (:data:`HEADER_DICTIONARY`).  Each direction of a connection is ONE zlib
  stream: every block is compressed with the same compressor and ends with a sync flush, so
  the receiver must decompress the blocks in order with one decompressor.  A
  :class:`Codec` is the per-connection state of both directions.

Limits: a frame's length field is 24 bits (:data:`MAX_FRAME_LENGTH`); a decompressed header
block larger than ``max_header_bytes`` (default 256 KiB) is a :class:`ProtocolError`, so a
compression bomb cannot exhaust memory.  Unknown control frame types are returned as
:class:`Unknown` (the spec says to ignore them).  Stream semantics (ids, FIN, replies) are
the session's business, not this module's.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
MAX_FRAME_LENGTH = (1 << 24) - 1
MAX_STREAM_ID = (1 << 31) - 1

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes (§2.4.2).
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9

# GOAWAY status codes (§2.6.6).
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
    "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server", "te",
    "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public",
    "set-cookie", "keep-alive", "origin")
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    """The SPDY/3 zlib dictionary (§2.6.10.1): length-prefixed words, then a raw tail."""
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


HEADER_DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


class ProtocolError(ValueError):
    """Bytes that are not valid SPDY/3 (the session answers with GOAWAY and closes)."""


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_to: int = 0
    priority: int = 0
    slot: int = 0


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    #: ``(flags, id, value)`` per entry.
    entries: tuple[tuple[int, int, int], ...] = ()
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True, slots=True)
class Data:
    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A control frame of a type this module does not know (to be ignored)."""

    frame_type: int
    flags: int
    payload: bytes


Frame = (SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate
         | Data | Unknown)


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed header block: names lower-cased, several values joined with NUL."""
    parts = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        raw_name, raw_value = name.lower().encode(), "\x00".join(values).encode()
        parts += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(parts)


def decode_header_block(block: bytes) -> Headers:
    """The inverse of :func:`encode_header_block` (names lower-cased, repeated names merged)."""
    headers: Headers = {}
    offset = 0

    def take(size: int) -> bytes:
        nonlocal offset
        if offset + size > len(block):
            raise ProtocolError("header block truncated")
        piece = block[offset:offset + size]
        offset += size
        return piece

    (count,) = struct.unpack(">I", take(4))
    for _ in range(count):
        (size,) = struct.unpack(">I", take(4))
        name = take(size).decode("utf-8", "replace").lower()
        (size,) = struct.unpack(">I", take(4))
        headers.setdefault(name, []).extend(take(size).decode("utf-8", "replace").split("\x00"))
    if offset != len(block):
        raise ProtocolError(f"{len(block) - offset} bytes after the header block")
    return headers


@dataclass
class Codec:
    """Per-connection framing state: the zlib streams of both directions, and unparsed input."""

    max_header_bytes: int = 256 * 1024
    _compressor: zlib._Compress = field(init=False, repr=False)
    _decompressor: zlib._Decompress = field(init=False, repr=False)
    _buffer: bytearray = field(default_factory=bytearray, repr=False)

    def __post_init__(self) -> None:
        self._compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=HEADER_DICTIONARY)
        self._decompressor = zlib.decompressobj(15, zdict=HEADER_DICTIONARY)

    # -- encoding ------------------------------------------------------------------------
    def compress(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._compressor.compress(block) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        """The bytes of ``frame``; header blocks advance this connection's compressor, so
        frames must be sent in the order they were encoded."""
        if isinstance(frame, Data):
            _check_id(frame.stream_id, "stream id", zero=False)
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise ValueError(f"data frame of {len(frame.data)} bytes is over {MAX_FRAME_LENGTH}")
            return struct.pack(">II", frame.stream_id, (frame.flags & 0xFF) << 24 | len(frame.data)) + frame.data
        frame_type, flags, body = self._control_body(frame)
        if len(body) > MAX_FRAME_LENGTH:
            raise ValueError(f"control frame of {len(body)} bytes is over {MAX_FRAME_LENGTH}")
        return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags & 0xFF) << 24 | len(body)) + body

    def _control_body(self, frame: Frame) -> tuple[int, int, bytes]:
        match frame:
            case SynStream():
                _check_id(frame.stream_id, "stream id", zero=False)
                _check_id(frame.associated_to, "associated-to stream id")
                return SYN_STREAM, frame.flags, struct.pack(
                    ">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5,
                    frame.slot) + self.compress(frame.headers)
            case SynReply():
                _check_id(frame.stream_id, "stream id", zero=False)
                return SYN_REPLY, frame.flags, struct.pack(">I", frame.stream_id) + self.compress(frame.headers)
            case HeadersFrame():
                _check_id(frame.stream_id, "stream id", zero=False)
                return HEADERS, frame.flags, struct.pack(">I", frame.stream_id) + self.compress(frame.headers)
            case RstStream():
                _check_id(frame.stream_id, "stream id", zero=False)
                if frame.status == 0:
                    raise ValueError("RST_STREAM status 0 is invalid")
                return RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status)
            case Settings():
                body = struct.pack(">I", len(frame.entries)) + b"".join(
                    struct.pack(">II", (f & 0xFF) << 24 | (i & 0xFFFFFF), v) for f, i, v in frame.entries)
                return SETTINGS, frame.flags, body
            case Ping():
                if not 0 < frame.ping_id <= 0xFFFFFFFF:
                    raise ValueError(f"invalid ping id {frame.ping_id}")
                return PING, 0, struct.pack(">I", frame.ping_id)
            case GoAway():
                _check_id(frame.last_good_stream_id, "last good stream id")
                return GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status)
            case WindowUpdate():
                _check_id(frame.stream_id, "stream id")
                _check_id(frame.delta, "window delta", zero=False)
                return WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta)
            case Unknown():
                return frame.frame_type, frame.flags, frame.payload
        raise TypeError(f"not a SPDY frame: {frame!r}")

    # -- decoding ------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        """Every complete frame in the input so far (the rest is kept for the next call)."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version, frame_type = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise ProtocolError(f"unsupported SPDY version {version}")
                frames.append(self._control(frame_type, flags, payload))
            else:
                stream_id = first & MAX_STREAM_ID
                if stream_id == 0:
                    raise ProtocolError("data frame on stream 0")
                frames.append(Data(stream_id, payload, flags))
        return frames

    def decompress(self, block: bytes) -> Headers:
        try:
            raw = self._decompressor.decompress(block, self.max_header_bytes + 1)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not decompress: {exc}") from exc
        if len(raw) > self.max_header_bytes or self._decompressor.unconsumed_tail:
            raise ProtocolError(f"header block larger than {self.max_header_bytes} bytes")
        return decode_header_block(raw)

    def _control(self, frame_type: int, flags: int, payload: bytes) -> Frame:
        def fixed(size: int) -> tuple[int, ...]:
            if len(payload) != size:
                raise ProtocolError(f"control frame type {frame_type} of {len(payload)} bytes, not {size}")
            return struct.unpack(">" + "I" * (size // 4), payload)

        def at_least(size: int) -> None:
            if len(payload) < size:
                raise ProtocolError(f"control frame type {frame_type} of only {len(payload)} bytes")

        match frame_type:
            case 1:  # SYN_STREAM
                at_least(10)
                stream_id, associated, priority, slot = struct.unpack_from(">IIBB", payload)
                stream_id &= MAX_STREAM_ID
                if stream_id == 0:
                    raise ProtocolError("SYN_STREAM for stream 0")
                return SynStream(stream_id, self.decompress(payload[10:]), flags,
                                 associated & MAX_STREAM_ID, priority >> 5, slot)
            case 2 | 8:  # SYN_REPLY, HEADERS
                at_least(4)
                (stream_id,) = struct.unpack_from(">I", payload)
                stream_id &= MAX_STREAM_ID
                if stream_id == 0:
                    raise ProtocolError(f"control frame type {frame_type} for stream 0")
                headers = self.decompress(payload[4:])
                if frame_type == SYN_REPLY:
                    return SynReply(stream_id, headers, flags)
                return HeadersFrame(stream_id, headers, flags)
            case 3:  # RST_STREAM
                stream_id, status = fixed(8)
                if status == 0 or stream_id & MAX_STREAM_ID == 0:
                    raise ProtocolError("RST_STREAM with status 0 or for stream 0")
                return RstStream(stream_id & MAX_STREAM_ID, status)
            case 4:  # SETTINGS
                at_least(4)
                (count,) = struct.unpack_from(">I", payload)
                if len(payload) != 4 + 8 * count:
                    raise ProtocolError(f"SETTINGS of {len(payload)} bytes for {count} entries")
                entries = tuple((flag_id >> 24, flag_id & 0xFFFFFF, value) for flag_id, value in
                                struct.iter_unpack(">II", payload[4:]))
                return Settings(entries, flags)
            case 6:  # PING
                (ping_id,) = fixed(4)
                if ping_id == 0:
                    raise ProtocolError("PING with id 0")
                return Ping(ping_id)
            case 7:  # GOAWAY
                last_good, status = fixed(8)
                return GoAway(last_good & MAX_STREAM_ID, status)
            case 9:  # WINDOW_UPDATE
                stream_id, delta = fixed(8)
                return WindowUpdate(stream_id & MAX_STREAM_ID, delta & MAX_STREAM_ID)
        return Unknown(frame_type, flags, payload)


def _check_id(value: int, what: str, *, zero: bool = True) -> None:
    if not (0 if zero else 1) <= value <= MAX_STREAM_ID:
        raise ValueError(f"invalid {what} {value}")
