#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# Writes the seed corpora of larder's fuzz targets under tests/fuzz/corpus/
# (one directory per target), from valid inputs: what larder itself writes,
# plus a few edge forms. Deterministic: rerunning gives the same files, so the
# committed corpus is reproducible. Usage: scripts/fuzz_corpus.py [OUTDIR]
import hashlib
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz", "corpus")


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def write(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_redis_entry: codec selector byte + header + codec bytes ----
def entry(fresh, stale, payload):
    return bytes([0xA7, 1]) + struct.pack("<qq", fresh, stale) + payload

NOW = 1_700_000_000_000
payloads = {
    0: b"hello", 1: b"\x01", 2: b"\xff", 3: struct.pack("<H", 513), 4: struct.pack("<i", -7),
    5: struct.pack("<I", 7), 6: struct.pack("<q", -(1 << 40)), 7: struct.pack("<Q", 1 << 63),
    8: struct.pack("<f", 1.5), 9: struct.pack("<d", -0.25), 10: struct.pack("<h", 300),
    11: struct.pack("<I", 1), 12: struct.pack("<iHHd", -3, 1, 2, 0.5),
    13: struct.pack("<3i", 1, -2, 3), 14: struct.pack("<2d", 1.0, 2.0), 15: b"\x00\x01\x02",
    16: b"\x01value", 17: b"\x01" + struct.pack("<q", 42), 18: b"\x00",
}
for which, p in payloads.items():
    write("fuzz_redis_entry", bytes([which]) + entry(NOW, NOW + 60_000, p))
write("fuzz_redis_entry", bytes([0]) + entry(NOW, NOW, b""))
write("fuzz_redis_entry", bytes([0]) + entry(-9223372036854, 9223372036854, b"x"))

# ---- fuzz_journal_replay: the builder's grammar (see the target) ----
def rec(type_, step, key, value):
    return bytes([type_ - 1, step, len(key)]) + key + bytes([len(value)]) + value

def seg(flags, records, damage=b"\x00"):
    return bytes([flags, len(records)]) + b"".join(records) + damage

write("fuzz_journal_replay", bytes([0]) + seg(0, [rec(1, 1, b"k1", b"v1"), rec(2, 1, b"k1", b"")]))
write("fuzz_journal_replay", bytes([2]) + seg(0, [rec(1, 1, b"a", b"1"), rec(1, 1, b"b", b"2")])
      + seg(2, [rec(3, 1, b"", b"x"), rec(1, 1, b"c", b"3")]) + seg(0, [rec(1, 1, b"d", b"4")], b"\x01\x0b\x00"))
write("fuzz_journal_replay", bytes([1]) + seg(0, [rec(1, 1, b"k", b"v" * 30)], b"\x02\x10\x00\x04")
      + seg(1, [rec(1, 1, b"k", b"v")]))
write("fuzz_journal_replay", bytes([0]) + seg(4, []) + bytes([20]) + b"\x09\x00\x00\x00" * 5)

# ---- fuzz_redis_reply: u8 (n-1, bit 7 keep open) + RESP ----
resp = [
    (0, b"+PONG\r\n"), (1, b"+PONG\r\n:42\r\n"), (2, b"$5\r\nhello\r\n$-1\r\n*-1\r\n"),
    (0, b"*3\r\n$3\r\nfoo\r\n:1\r\n*2\r\n+a\r\n-ERR b\r\n"), (0, b"-MOVED 1 127.0.0.1:7000\r\n"),
    (0, b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), (0, b"$0\r\n\r\n+extra\r\n"),
    (0x80, b"$10\r\nabc"), (0x80 | 1, b"+PONG\r\n"), (0, b"*2\r\n$3\r\nabc"), (3, b"*0\r\n+OK\r\n:-5\r\n$1\r\n\x00\r\n"),
]
for head, body in resp:
    write("fuzz_redis_reply", bytes([head]) + body)

# ---- fuzz_bus_message: payloads ----
write("fuzz_bus_message", b"\x00LDR1" + struct.pack("<Q", 7) + b"k" + b"users:42")
write("fuzz_bus_message", b"\x00LDR1" + struct.pack("<Q", 0) + b"c")
write("fuzz_bus_message", b"users:42")
write("fuzz_bus_message", b"")

# ---- fuzz_redis_uri ----
for u in [b"redis://127.0.0.1:6379/0", b"redis://:s3cret@host:7000/2?connect_timeout=200ms",
          b"redis://app:p%40ss@[::1]:6380", b"unix:///tmp/redis.sock?db=3",
          b"redis-cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001",
          b"redis-sentinel://h1:26379,h2:26379/mymaster?db=1", b"rediss://host", b"redis://"]:
    write("fuzz_redis_uri", u)

# ---- fuzz_trace_reader: chunk byte + trace ----
write("fuzz_trace_reader", b"\x03" + b"1\n2\n3\n18446744073709551615\n")
write("fuzz_trace_reader", b"\x00" + b" 7\t8\r\n\n0009")
write("fuzz_trace_reader", b"\x05" + b"18446744073709551616\n")
write("fuzz_trace_reader", b"\x01" + b"12x\n")
