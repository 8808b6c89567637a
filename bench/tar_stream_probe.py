"""A design probe for issue 9: GNU tar writes the archive, Python only reads its headers.

Issue 9's last option for small files is to let GNU tar (C) produce the pax
stream while pytp parses the headers as the stream passes to the drive,
records each member's offset and hashes its data.  Before building it, this
measures its floor: the stream is read from stdin in 4 MiB pieces and written
to a file (the tape), each header is parsed (ustar fields, pax records), each
regular file's data is hashed with xxh3-128, and a row tuple is made per
member — what every design of that pipeline must do in Python.  It writes no
catalog rows and no manifest lines (pytp's rows cost ~3 µs each in SQLite's
``executemany``, its manifest lines ~4 µs), and nothing here is a check of
the stream: a floor, not a product.

GNU tar is run with ``--format=pax --pax-option=delete=atime,delete=ctime``,
which writes headers as pytp does: one ustar block where the fields fit, a
pax ``mtime`` record only for sub-second times.

Usage (``bench/backup_small.py`` runs it as a reference line)::

    tar --format=pax --pax-option=delete=atime,delete=ctime -cf - SRC | python bench/tar_stream_probe.py OUT

It prints the members and its own CPU per member on stderr.
"""

from __future__ import annotations

import os
import sys
import time

import xxhash

RECORD = 512
#: the stream is read in pieces this large (the block assembler's size in pytp)
PIECE = 4 << 20
#: the GNU tar options that make pytp's header layout
TAR_OPTIONS = "--format=pax --pax-option=delete=atime,delete=ctime"
_ZEROS = bytes(RECORD)


def _octal(field: bytes | bytearray) -> int:
    field = bytes(field).rstrip(b"\0 ")
    return int(field, 8) if field else 0


def _text(field: bytes | bytearray) -> bytes:
    return bytes(field).split(b"\0", 1)[0]


class Stream:
    """stdin in pieces, passed on to ``out`` as it is consumed."""

    def __init__(self, fd: int, out: int) -> None:
        self.fd, self.out = fd, out
        self.buf = bytearray(PIECE)
        self.view = memoryview(self.buf)
        self.filled = self.pos = 0
        self.base = 0  # stream offset of buf[0]
        self.eof = False

    def available(self) -> int:
        return self.filled - self.pos

    def refill(self) -> None:
        """Pass on what was consumed, keep the rest, read more."""
        os.write(self.out, self.view[: self.pos])
        tail = self.filled - self.pos
        self.view[:tail] = self.view[self.pos : self.filled]
        self.base += self.pos
        self.filled, self.pos = tail, 0
        while self.filled < PIECE and not self.eof:
            n = os.readv(self.fd, [self.view[self.filled :]])
            self.eof = n == 0
            self.filled += n

    def finish(self) -> None:
        os.write(self.out, self.view[: self.filled])
        while chunk := os.read(self.fd, PIECE):
            os.write(self.out, chunk)


def members(stream: Stream) -> list[tuple[object, ...]]:
    """Walk the archive; one row per member (the last few thousand kept, as a batch would be)."""
    rows: list[tuple[object, ...]] = []
    count = 0
    pax: dict[bytes, bytes] | None = None
    pax_offset = 0
    while True:
        if stream.available() < RECORD:
            stream.refill()
            if stream.available() < RECORD:
                break
        pos = stream.pos
        header = stream.buf[pos : pos + RECORD]
        if header == _ZEROS:
            break
        offset = stream.base + pos
        kind = header[156:157]
        size = _octal(header[124:136])
        padded = (size + RECORD - 1) & ~(RECORD - 1)
        if kind in (b"x", b"g"):
            if stream.available() < RECORD + padded:
                stream.refill()
                pos = stream.pos
            records = bytes(stream.buf[pos + RECORD : pos + RECORD + size])
            pax, pax_offset = _pax_records(records), offset
            stream.pos = pos + RECORD + padded
            continue
        name = _text(header[0:100])
        prefix = _text(header[345:500])
        if prefix:
            name = prefix + b"/" + name
        mtime: object = _octal(header[136:148])
        first = offset
        if pax is not None:
            first = pax_offset
            name = pax.get(b"path", name)
            mtime = pax.get(b"mtime", mtime)
            pax = None
        stream.pos = pos + RECORD
        digest = _hash(stream, size, padded) if kind in (b"0", b"\0") else None
        rows.append(
            (
                name,
                kind,
                size,
                _octal(header[100:108]),
                _octal(header[108:116]),
                _octal(header[116:124]),
                _text(header[265:297]),
                _text(header[297:329]),
                mtime,
                _text(header[157:257]) or None,
                digest,
                first,
                offset + RECORD - first,
            )
        )
        count += 1
        if len(rows) == 2000:
            rows.clear()
    return [(count,)]


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    i = 0
    while i < len(data):
        space = data.index(b" ", i)
        length = int(data[i:space])
        key, _, value = data[space + 1 : i + length - 1].partition(b"=")
        records[key] = value
        i += length
    return records


def _hash(stream: Stream, size: int, padded: int) -> bytes:
    """xxh3-128 of the member's data, which may run past the piece in memory."""
    if stream.available() >= padded:
        digest = xxhash.xxh3_128_digest(stream.view[stream.pos : stream.pos + size])
        stream.pos += padded
        return digest
    hasher = xxhash.xxh3_128()
    left, skip = size, padded - size
    while left or skip:
        if not stream.available():
            stream.refill()
            if not stream.available():
                raise SystemExit("the archive ends inside a member")
        take = min(left, stream.available())
        hasher.update(stream.view[stream.pos : stream.pos + take])
        stream.pos += take
        left -= take
        if not left:
            take = min(skip, stream.available())
            stream.pos += take
            skip -= take
    return hasher.digest()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    start = time.process_time()
    out = os.open(argv[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    stream = Stream(0, out)
    ((count,),) = members(stream)
    stream.finish()
    os.close(out)
    cpu = time.process_time() - start
    print(f"{count} members, {cpu:.3f} s of CPU, {cpu / max(count, 1) * 1e6:.1f} µs per member", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
