#!/usr/bin/env python3
"""The README walk-through's two peers, with nothing but the Python standard library.

As alice, sends --count RTP packets with SSRC --ssrc and payload type --pt from --send-from to ringfwd's media
address --media, one every --interval-ms; as bob, listens on --receive-on and prints every packet that arrives:
an RTP packet's SSRC (hex), payload type and sequence number, an RTCP packet's type and sender SSRC. Ends with a
summary line once every packet sent has arrived, or --wait-ms after the last arrival. The defaults are the
walk-through's values, so after its `ringfwd ctl` commands

    python3 tests/scripts/walkthrough.py

shows bob receiving alice's stream with his SSRC 0x22222222 and payload type 109. Exit status: 0 when RTP
arrived, 1 when none did, 2 for bad arguments.
"""

import argparse
import ipaddress
import select
import socket
import struct
import sys
import time

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")
# RTCP packet types share the RTP header's second byte: SR, RR, SDES, BYE, APP, RTPFB, PSFB.
RTCP_TYPES = {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP", 205: "RTPFB", 206: "PSFB"}
# Opus at 48 kHz: 20 ms is 960 samples.
TIMESTAMP_STEP = 960
PAYLOAD = bytes(range(40))


def address(text):
    """'ip:port' or '[ipv6]:port', as a (family, sockaddr) pair."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not ip:port (IPv6 as [addr]:port)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: port must be 1..65535")
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return family, (str(ip), int(port))


def bounded(name, low, high):
    """An integer (decimal or 0x hex) in low..=high."""

    def parse(text):
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} {text!r} must be in {low}..={high}")
        return value

    return parse


def arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=address, default="127.0.0.1:40000", help="ringfwd's media address")
    parser.add_argument("--send-from", type=address, default="127.0.0.1:5000", help="alice's address")
    parser.add_argument("--receive-on", type=address, default="127.0.0.1:5002", help="bob's address")
    parser.add_argument("--count", type=bounded("--count", 1, 100_000), default=50, help="RTP packets to send")
    parser.add_argument("--ssrc", type=bounded("--ssrc", 0, 0xFFFFFFFF), default=0x11111111, help="alice's SSRC")
    parser.add_argument("--pt", type=bounded("--pt", 0, 127), default=111, help="alice's payload type")
    parser.add_argument("--interval-ms", type=bounded("--interval-ms", 0, 10_000), default=20)
    parser.add_argument("--wait-ms", type=bounded("--wait-ms", 1, 60_000), default=1000,
                        help="how long to wait for more after the last packet arrived")
    args = parser.parse_args(argv)
    if args.send_from[0] != args.media[0]:
        parser.error("--send-from and --media must be of one address family")
    return args


def describe(packet):
    """One line about a received datagram, and whether it was RTP (ssrc, pt) or None."""
    if len(packet) < 8 or packet[0] >> 6 != RTP_VERSION:
        return f"other bytes={len(packet)}", None
    if packet[1] in RTCP_TYPES:
        kind = RTCP_TYPES[packet[1]]
        (sender,) = struct.unpack_from("!I", packet, 4)
        return f"rtcp type={packet[1]} ({kind}) ssrc=0x{sender:08x} bytes={len(packet)}", None
    if len(packet) < RTP_HEADER.size:
        return f"other bytes={len(packet)}", None
    _, marker_pt, seq, timestamp, ssrc = RTP_HEADER.unpack_from(packet)
    pt = marker_pt & 0x7F
    return f"rtp ssrc=0x{ssrc:08x} pt={pt} seq={seq} ts={timestamp} bytes={len(packet)}", (ssrc, pt)


def main(argv):
    args = arguments(argv)
    receiver = socket.socket(args.receive_on[0], socket.SOCK_DGRAM)
    sender = socket.socket(args.media[0], socket.SOCK_DGRAM)
    try:
        receiver.bind(args.receive_on[1])
        sender.bind(args.send_from[1])
    except OSError as e:
        print(f"cannot bind: {e} (is another program on {args.receive_on[1]} or {args.send_from[1]}?)",
              file=sys.stderr)
        return 2
    receiver.setblocking(False)
    streams = {}
    rtcp = 0
    rtp = 0

    def receive(timeout_s):
        nonlocal rtcp, rtp
        readable, _, _ = select.select([receiver], [], [], max(timeout_s, 0))
        if not readable:
            return False
        packet = receiver.recv(65536)
        line, stream = describe(packet)
        print(line, flush=True)
        if stream is None:
            rtcp += line.startswith("rtcp")
        else:
            rtp += 1
            streams[stream] = streams.get(stream, 0) + 1
        return True

    seq = 0x1000
    next_send = time.monotonic()
    for n in range(args.count):
        header = RTP_HEADER.pack(RTP_VERSION << 6, args.pt, (seq + n) & 0xFFFF, (n * TIMESTAMP_STEP) & 0xFFFFFFFF,
                                 args.ssrc)
        sender.sendto(header + PAYLOAD, args.media[1])
        next_send += args.interval_ms / 1000
        while receive(next_send - time.monotonic()):
            pass
    deadline = time.monotonic() + args.wait_ms / 1000
    while rtp < args.count and time.monotonic() < deadline:
        if receive(deadline - time.monotonic()):
            deadline = time.monotonic() + args.wait_ms / 1000

    received = ", ".join(f"{count} with ssrc=0x{ssrc:08x} pt={pt}" for (ssrc, pt), count in sorted(streams.items()))
    print(f"summary: sent {args.count} RTP packets with ssrc=0x{args.ssrc:08x} pt={args.pt} from "
          f"{args.send_from[1][0]}:{args.send_from[1][1]} to {args.media[1][0]}:{args.media[1][1]}; "
          f"received {rtp} RTP ({received or 'none'}) and {rtcp} RTCP on "
          f"{args.receive_on[1][0]}:{args.receive_on[1][1]}", flush=True)
    if rtp == 0:
        print("nothing arrived: did the walk-through's `ringfwd ctl` commands succeed, and is --media the "
              "daemon's media address (its ready line says)?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
