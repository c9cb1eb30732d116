"""Userspace netem for kernels without sch_netem: loss and delay on what a node sends.

    shaper.py NODE [--loss PCT] [--delay-ms MS] [--jitter-ms MS] [--dev eth0] [--tap vcshp]

Used by vcluster.netem() when ``tc qdisc ... netem`` is unknown to the kernel (seen: a 6.18
kernel built without CONFIG_NET_SCH_NETEM / CONFIG_NET_SCH_PRIO / CONFIG_NET_ACT_GACT).
How it works, entirely with what such a kernel has (clsact, u32, mirred, tun, AF_PACKET):

* the process enters the node's network namespace only to create its two endpoints there —
  a TAP device ``vcshp`` (no address, NOARP) and an AF_PACKET socket on ``eth0`` with
  PACKET_QDISC_BYPASS — then returns to the host's namespace, so ``ip netns pids NODE`` (and
  with it crash_node / kill_job_processes) never sees or kills it;
* vcluster.py then adds a clsact egress filter on the node's eth0 that redirects every frame
  the node sends to ``vcshp`` (mirred): the frames arrive on the TAP descriptor here;
* each frame is dropped with probability PCT/100 or held for MS (+ uniform jitter) and then
  sent out of eth0 through the bypass socket (which skips the egress hook: no loop).

Prints "ready" once both endpoints exist; runs until killed (SIGTERM/SIGKILL).  Traffic that
arrives at the node is not touched (as with netem on eth0's egress).
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_NOARP = 0x80
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
ETH_P_ALL = 0x0003


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _set_flags(name: str, on: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH", name.encode(), 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", name.encode(), flags | on))
    finally:
        s.close()


def open_endpoints(node: str, dev: str, tap: str):
    host_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
    node_ns = os.open(f"/run/netns/{node}", os.O_RDONLY)
    try:
        _setns(node_ns)
        try:
            tun = os.open("/dev/net/tun", os.O_RDWR)
            fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
            _set_flags(tap, IFF_UP | IFF_NOARP)
            out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            out.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            out.bind((dev, 0))
            # we only send on this socket: keep its receive queue empty
            out.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        finally:
            _setns(host_ns)
    finally:
        os.close(host_ns)
        os.close(node_ns)
    return tun, out


def main(argv: list) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("node")
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--dev", default="eth0")
    ap.add_argument("--tap", default="vcshp")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tun, out = open_endpoints(a.node, a.dev, a.tap)
    os.set_blocking(tun, False)
    print("ready", flush=True)
    loss, delay, jitter = a.loss / 100.0, a.delay_ms / 1000.0, a.jitter_ms / 1000.0
    rng = random.Random()
    held: list = []  # (due, seq, frame)
    seq = 0
    while True:
        timeout = None
        if held:
            timeout = max(0.0, held[0][0] - time.monotonic())
        ready, _, _ = select.select([tun], [], [], timeout)
        now = time.monotonic()
        if ready:
            for _ in range(64):  # drain what is there
                try:
                    frame = os.read(tun, 65536)
                except BlockingIOError:
                    break
                if loss and rng.random() < loss:
                    pass
                elif delay or jitter:
                    due = now + delay + (rng.uniform(-jitter, jitter) if jitter else 0.0)
                    heapq.heappush(held, (due, seq, frame))
                    seq += 1
                else:
                    _send(out, frame)
                if not select.select([tun], [], [], 0)[0]:
                    break
        now = time.monotonic()
        while held and held[0][0] <= now:
            _send(out, heapq.heappop(held)[2])


def _send(out: socket.socket, frame: bytes) -> None:
    try:
        out.send(frame)
    except OSError:
        pass  # e.g. the link is down: the frame is lost, as on a wire


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
