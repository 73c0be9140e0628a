"""An independent gRPC server for scripts/interop-grpc.sh: Python grpcio serving
metronome.demo.v1.Demo (proto/metronome/demo/v1/demo.proto) with server reflection.

Not metronome's own code on the other side: status codes, trailers, reflection, TLS and flow
control are grpcio's. Options make it shed (UNAVAILABLE with grpc-retry-pushback-ms), take time
and stall, so that what metronome reports can be checked against what is known to have happened.
On SIGTERM it prints the calls it received per method, as JSON, and exits.

Usage: grpc_server.py STUBS_DIR PORT [--delay S] [--shed P] [--stall AT+LEN] [--tls CERT KEY]
"""

import argparse
import json
import random
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_reflection.v1alpha import reflection

args = argparse.ArgumentParser()
args.add_argument("stubs")
args.add_argument("port", type=int)
args.add_argument("--delay", type=float, default=0.0, help="seconds of work per Ping")
args.add_argument("--shed", type=float, default=0.0, help="share of Pings shed")
args.add_argument("--stall", default=None, help="AT+LEN seconds after the first Ping")
args.add_argument("--tls", nargs=2, default=None, metavar=("CERT", "KEY"))
opts = args.parse_args()

sys.path.insert(0, opts.stubs)
from metronome.demo.v1 import demo_pb2, demo_pb2_grpc  # noqa: E402

counts = {}
lock = threading.Lock()
first_ping = []


def count(method):
    with lock:
        counts[method] = counts.get(method, 0) + 1
        if method == "Ping" and not first_ping:
            first_ping.append(time.monotonic())


def stalled_until():
    """While a stall is on, every Ping waits for its end."""
    if not opts.stall or not first_ping:
        return None
    at, length = (float(x) for x in opts.stall.split("+"))
    start = first_ping[0] + at
    end = start + length
    now = time.monotonic()
    return end if start <= now < end else None


class Demo(demo_pb2_grpc.DemoServicer):
    def Ping(self, request, context):
        count("Ping")
        end = stalled_until()
        if end is not None:
            time.sleep(max(0.0, end - time.monotonic()))
        if opts.shed and random.random() < opts.shed:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", "50"),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "shed")
        if opts.delay:
            time.sleep(opts.delay)
        return demo_pb2.PingReply(message=request.message)

    def Stream(self, request, context):
        count("Stream")
        for i in range(request.count):
            if i and request.interval_ms:
                time.sleep(request.interval_ms / 1000)
            yield demo_pb2.StreamReply(index=i, message=request.message)

    def Collect(self, request_iterator, context):
        count("Collect")
        return demo_pb2.PingReply(message=str(sum(1 for _ in request_iterator)))

    def Chat(self, request_iterator, context):
        # Replies as each request arrives (metronome's own server waits for all of them).
        count("Chat")
        for r in request_iterator:
            yield demo_pb2.PingReply(message=r.message)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=512))
demo_pb2_grpc.add_DemoServicer_to_server(Demo(), server)
names = (demo_pb2.DESCRIPTOR.services_by_name["Demo"].full_name, reflection.SERVICE_NAME)
reflection.enable_server_reflection(names, server)
address = f"127.0.0.1:{opts.port}"
if opts.tls:
    with open(opts.tls[0], "rb") as c, open(opts.tls[1], "rb") as k:
        creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
    server.add_secure_port(address, creds)
else:
    server.add_insecure_port(address)


def stop(*_):
    with lock:
        print(json.dumps(counts), flush=True)
    server.stop(0)


signal.signal(signal.SIGTERM, stop)
server.start()
print("listening", flush=True)
server.wait_for_termination()
