#!/usr/bin/env python3
"""The chaos run's load client (scripts/chaos.sh): API v2 json produce requests whose records
carry ids used nowhere else, over a few keep-alive connections, paced, until a stop file
appears, a time limit or a request budget. Standard library only.

Every request gets fresh ids (nothing is ever retried with the same ids), so a duplicate
read back from Kafka was made by the service or the producer, never by this client.

It writes, in --out:
  acked.log     "ID PARTITION OFFSET T_MS": the record was acknowledged, i.e. the answer
                was 2xx and the record's entry in "offsets" had no error
  failed.log    "ID CODE": the answer said this record failed (a non-2xx status: its
                error_code, else the status; or the entry's error_code in a 200)
  unknown.log   "ID": no answer (connection reset, timeout): the record may or may not
                have been written
  requests.log  "T_MS OUTCOME": one line per request; OUTCOME is the HTTP status or
                conn:KIND for a request that got no answer
  load.json     the totals
T_MS is milliseconds since the Unix epoch, when the answer (or the error) arrived.
"""

import argparse
import collections
import errno
import http.client
import json
import os
import socket
import threading
import time

CONTENT_TYPE = "application/vnd.kafka.json.v2+json"


class Logs:
    """The output files and the totals, shared by the connection threads."""

    def __init__(self, out):
        self.lock = threading.Lock()
        self.files = {
            name: open(os.path.join(out, name + ".log"), "w", buffering=1)
            for name in ("acked", "failed", "unknown", "requests")
        }
        self.requests = 0
        self.statuses = collections.Counter()
        self.record_errors = collections.Counter()
        self.connection_errors = collections.Counter()
        self.records = collections.Counter()

    def claim(self, budget):
        """Takes one request of the budget; False once it is spent."""
        with self.lock:
            if self.requests >= budget:
                return False
            self.requests += 1
            return True

    def answered(self, status, ids, entries):
        """An answer: `entries` is the parsed "offsets" of a 2xx, or the error code (a
        number) that every record of a refused request shares."""
        now = now_ms()
        with self.lock:
            self.statuses[str(status)] += 1
            self.files["requests"].write(f"{now} {status}\n")
            if isinstance(entries, int):
                self.records["failed"] += len(ids)
                self.files["failed"].writelines(f"{i} {entries}\n" for i in ids)
                return
            for record_id, entry in zip(ids, entries):
                code = entry.get("error_code")
                if code is None:
                    self.records["acked"] += 1
                    self.files["acked"].write(
                        f"{record_id} {entry['partition']} {entry['offset']} {now}\n"
                    )
                else:
                    self.records["failed"] += 1
                    self.record_errors[str(code)] += 1
                    self.files["failed"].write(f"{record_id} {code}\n")

    def no_answer(self, kind, ids, sent):
        """A request that got no answer; when it was never `sent` (connection refused), its
        records cannot have been written."""
        now = now_ms()
        with self.lock:
            self.connection_errors[kind] += 1
            self.files["requests"].write(f"{now} conn:{kind}\n")
            if sent:
                self.records["unknown"] += len(ids)
                self.files["unknown"].writelines(f"{i}\n" for i in ids)
            else:
                self.records["not_sent"] += len(ids)

    def close(self):
        for f in self.files.values():
            f.close()


def now_ms():
    return int(time.time() * 1000)


def classify(error):
    """The kind of a connection error, and whether the request may have reached the
    service."""
    if isinstance(error, ConnectionRefusedError):
        return "refused", False
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timeout", True
    if isinstance(error, http.client.RemoteDisconnected):
        return "closed", True
    if isinstance(error, ConnectionResetError):
        return "reset", True
    if isinstance(error, BrokenPipeError):
        return "broken_pipe", True
    if isinstance(error, OSError) and error.errno == errno.ECONNREFUSED:
        return "refused", False
    return type(error).__name__, True


def connection(args, index, logs, stop):
    host, port = args.host_port
    interval = args.connections / args.rate
    next_send = time.monotonic()
    conn = None
    seq = 0
    path = f"/topics/{args.topic}"
    while not stop.is_set() and logs.claim(args.max_requests):
        pause = next_send - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_send = max(next_send + interval, time.monotonic() - interval)
        ids = []
        records = []
        for _ in range(args.records):
            record_id = f"c{index}-{seq:08d}"
            seq += 1
            ids.append(record_id)
            records.append({"key": f"k{seq % 16}", "value": {"id": record_id}})
        body = json.dumps({"records": records}, separators=(",", ":"))
        sent = False
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
                conn.connect()
            sent = True
            conn.request("POST", path, body=body, headers={"Content-Type": CONTENT_TYPE})
            response = conn.getresponse()
            payload = response.read()
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as error:
            if conn is not None:
                conn.close()
                conn = None
            kind, maybe_sent = classify(error)
            logs.no_answer(kind, ids, sent and maybe_sent)
            if not maybe_sent:
                # Nothing listens (the service is restarting): do not spin.
                time.sleep(0.05)
            continue
        status = response.status
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = None
        if 200 <= status < 300:
            entries = parsed.get("offsets") if isinstance(parsed, dict) else None
            if not isinstance(entries, list) or len(entries) != len(ids):
                # An answer that does not say what happened to each record.
                logs.no_answer(f"malformed_{status}", ids, True)
                continue
            logs.answered(status, ids, entries)
        else:
            code = parsed.get("error_code") if isinstance(parsed, dict) else None
            logs.answered(status, ids, code if isinstance(code, int) else status)
    if conn is not None:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--records", type=int, default=5, help="records per request")
    parser.add_argument("--rate", type=float, default=100, help="requests/s, all together")
    parser.add_argument("--seconds", type=float, required=True, help="stop after this long")
    parser.add_argument("--max-requests", type=int, required=True)
    parser.add_argument("--stop-file", required=True, help="stop once this file exists")
    parser.add_argument("--timeout", type=float, default=30, help="seconds per request")
    args = parser.parse_args()
    host, _, port = args.url.removeprefix("http://").partition(":")
    args.host_port = (host, int(port))

    logs = Logs(args.out)
    stop = threading.Event()
    started = time.monotonic()
    threads = [
        threading.Thread(target=connection, args=(args, i, logs, stop), daemon=True)
        for i in range(args.connections)
    ]
    for t in threads:
        t.start()
    deadline = started + args.seconds
    while any(t.is_alive() for t in threads):
        if os.path.exists(args.stop_file) or time.monotonic() > deadline:
            stop.set()
        time.sleep(0.1)
    logs.close()
    totals = {
        "requests": logs.requests,
        "statuses": dict(sorted(logs.statuses.items())),
        "record_errors": dict(sorted(logs.record_errors.items())),
        "connection_errors": dict(sorted(logs.connection_errors.items())),
        "records": dict(sorted(logs.records.items())),
        "seconds": round(time.monotonic() - started, 1),
    }
    with open(os.path.join(args.out, "load.json"), "w") as f:
        json.dump(totals, f)


if __name__ == "__main__":
    main()
