"""An OTLP/HTTP endpoint for the benchmark's tracing group: answers every export with 200
and an empty ExportTraceServiceResponse (zero protobuf bytes), counting requests and bytes,
so that the proxy's exporter does the whole of its work (encode, send) against a collector
that keeps up. Usage: otlp_sink.py PORT; on SIGTERM prints "requests bytes"."""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        received["requests"] += 1
        received["bytes"] += length
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(*_):
        print(received["requests"], received["bytes"], flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
