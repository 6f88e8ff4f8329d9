"""A static Schema Registry responder for scripts/bench.sh: one Avro schema, id 1, under
every subject. The proxy asks it once (GET /schemas/ids/1, then POST /subjects/{s} to check
the subject) and serves every later request from its cache, so this needs no speed.

    registry.py PORT SCHEMA_JSON
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(sys.argv[1])
SCHEMA = sys.argv[2]
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", MEDIA_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.split("?")[0] == "/schemas/ids/1":
            self.answer(200, {"schema": SCHEMA})
        else:
            self.answer(404, {"error_code": 40403, "message": "Schema not found"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "subjects":
            self.answer(200, {"subject": parts[1], "id": 1, "version": 1, "schema": SCHEMA})
        else:
            self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
