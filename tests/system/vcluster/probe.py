"""Network probes between virtual-cluster nodes (run inside a node's namespace by vcluster.py).

    probe.py serve ADDR SECONDS          TCP listener + UDP echo on one port of ADDR; prints the
                                         port, serves for SECONDS (accepts and closes TCP at once)
    probe.py tcp ADDR PORT TIMEOUT       connect once; prints the connect time in s, or "fail ERR"
    probe.py udp ADDR PORT COUNT WAIT    COUNT numbered datagrams 5 ms apart, then WAIT s more for
                                         echoes; prints "sent received median_rtt_s"

Only standard library; traffic only to the ADDR given (a node's address on the test subnet).
"""

from __future__ import annotations

import select
import socket
import statistics
import sys
import time


def serve(addr: str, seconds: float) -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, 0))
    port = tcp.getsockname()[1]
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    print(port, flush=True)
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([tcp, udp], [], [], min(left, 0.5))
        for s in ready:
            if s is tcp:
                conn, _ = tcp.accept()
                conn.close()
            else:
                data, peer = udp.recvfrom(2048)
                udp.sendto(data, peer)


def tcp(addr: str, port: int, timeout: float) -> None:
    t0 = time.monotonic()
    try:
        socket.create_connection((addr, port), timeout=timeout).close()
    except OSError as exc:
        print(f"fail {type(exc).__name__}: {exc}", flush=True)
        return
    print(f"{time.monotonic() - t0:.6f}", flush=True)


def udp(addr: str, port: int, count: int, wait: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    sent_at: dict = {}
    rtts: list = []

    def drain() -> None:
        while True:
            try:
                data, _ = s.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            i = int(data.decode().split()[0])
            if i in sent_at:
                rtts.append(time.monotonic() - sent_at.pop(i))

    for i in range(count):
        sent_at[i] = time.monotonic()
        try:
            s.sendto(f"{i} probe".encode(), (addr, port))
        except OSError:
            pass
        time.sleep(0.005)
        drain()
    end = time.monotonic() + wait
    while sent_at and time.monotonic() < end:
        select.select([s], [], [], 0.05)
        drain()
    med = statistics.median(rtts) if rtts else -1.0
    print(f"{count} {len(rtts)} {med:.6f}", flush=True)


def main(argv: list) -> int:
    cmd = argv[0] if argv else ""
    if cmd == "serve":
        serve(argv[1], float(argv[2]))
    elif cmd == "tcp":
        tcp(argv[1], int(argv[2]), float(argv[3]))
    elif cmd == "udp":
        udp(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
