#!/usr/bin/env python3
"""The latency a proxy adds to each request, read from a packet capture (bench/compare.sh CAPTURE=1).

    added.py CAPTURE.pcap PROXY_PORT UPSTREAM_PORT

The capture (tcpdump on the loopback, data-carrying packets only) holds both of the proxy's
sides: the client's connections to PROXY_PORT and the proxy's own connections to UPSTREAM_PORT.
The kernel stamps each packet as it is sent, so the stamps do not depend on when the load
generator gets the CPU — the reason for this script: on a shared 2-core machine the generator's
own delays swamp the proxy's in any end-to-end percentile.

Each request the client sends is matched to the request the proxy made for it by the
`x-request-id` header: the proxy's answer to the client carries it, and so does the proxy's
request to the upstream (Hearth sends its correlation id both ways; bench/bare-proxy numbers its
requests the same way). For each matched pair:

    added (first byte) = (client's first answer byte - client's request)
                         - (upstream's first answer byte - proxy's request to it, last byte)
    added (last byte)  = the same to the last byte of each answer
    in                 = proxy's first byte to the upstream - client's first request byte
    out                = proxy's last answer byte to the client - upstream's last answer byte

HTTP/1.1 without pipelining on both sides (one exchange at a time per connection), IPv4.
Prints one line of JSON: counts and the 50th/99th/99.9th percentiles and maximum, in ms.
"""

import json
import re
import struct
import sys

REQUEST_ID = re.compile(rb"\r\nx-request-id: *([^\r\n]+)", re.IGNORECASE)
# Link-layer header lengths by pcap link type: Ethernet (what Linux's loopback gives), Linux
# cooked v1 and v2 (tcpdump -i any).
LINK_HEADER = {1: 14, 113: 16, 276: 20}


def packets(path):
    """(time in seconds, source port, destination port, captured payload, payload length)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            sys.exit(f"{path}: not a pcap file")
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        if linktype not in LINK_HEADER:
            sys.exit(f"{path}: link type {linktype} is not handled")
        skip = LINK_HEADER[linktype]
        record = struct.Struct(endian + "IIII")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, caught, _ = record.unpack(rec)
            data = f.read(caught)
            ip = data[skip:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack(">HH", tcp[:4])
            doff = (tcp[12] >> 4) * 4
            length = total - ihl - doff
            if length <= 0:
                continue
            t = sec + frac / (1e9 if nano else 1e6)
            yield t, sport, dport, tcp[doff:], length


def exchanges(path, server_ports):
    """Per server port, the exchanges seen on its connections: [request first, request last,
    answer first, answer last, request bytes, answer bytes] (the bytes of each side's first
    packet, where the headers are)."""
    flows = {}
    for t, sport, dport, payload, _ in packets(path):
        if dport in server_ports:
            key, from_client = (dport, sport), True
        elif sport in server_ports:
            key, from_client = (sport, dport), False
        else:
            continue
        seen = flows.setdefault(key, [])
        if from_client:
            if not seen or seen[-1][2] is not None:
                seen.append([t, t, None, None, payload, b""])
            else:
                seen[-1][1] = t
        elif seen:
            last = seen[-1]
            if last[2] is None:
                last[2], last[5] = t, payload
            last[3] = t
    by_port = {port: [] for port in server_ports}
    for (port, _), seen in flows.items():
        by_port[port].extend(e for e in seen if e[2] is not None)
    return by_port


def request_id(header_bytes):
    found = REQUEST_ID.search(header_bytes)
    return found.group(1).strip() if found else None


def percentiles(values):
    if not values:
        return None
    values = sorted(values)
    at = lambda p: values[min(len(values) - 1, max(0, int(p * len(values) + 0.999999) - 1))]
    ms = lambda s: round(s * 1000, 3)
    return {"p50": ms(at(0.50)), "p99": ms(at(0.99)), "p99.9": ms(at(0.999)), "max": ms(values[-1])}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, proxy, upstream = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    by_port = exchanges(path, {proxy, upstream})
    upstream_by_id = {}
    for e in by_port[upstream]:
        rid = request_id(e[4])
        if rid is not None:
            upstream_by_id[rid] = e
    first, last, inbound, outbound = [], [], [], []
    for c in by_port[proxy]:
        u = upstream_by_id.get(request_id(c[5]))
        if u is None:
            continue
        first.append((c[2] - c[0]) - (u[2] - u[1]))
        last.append((c[3] - c[0]) - (u[3] - u[1]))
        inbound.append(u[0] - c[0])
        outbound.append(c[3] - u[3])
    print(json.dumps({
        "client_requests": len(by_port[proxy]),
        "upstream_requests": len(by_port[upstream]),
        "matched": len(first),
        "added_first_byte_ms": percentiles(first),
        "added_last_byte_ms": percentiles(last),
        "in_ms": percentiles(inbound),
        "out_ms": percentiles(outbound),
    }))


if __name__ == "__main__":
    main()
