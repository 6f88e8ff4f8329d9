#!/usr/bin/env python3
"""The chaos run's reader and report (scripts/chaos.sh): reads the whole topic back with an
independent consumer (confluent-kafka, its own librdkafka, from the venv of
scripts/install-test-venv.sh), compares it with what the load client (load.py) logged, and
prints the report: a few lines for people, then one JSON line.

Exits 1 when an acknowledged record is missing from the topic, or is not at the partition
and offset its answer gave (only on that partition, when the answer gave offset -1), or when
the service crashed or did not exit cleanly on SIGTERM.

The cycles come from --out/cycles.log, one line per fault: "KIND START_MS END_MS".
"""

import argparse
import bisect
import collections
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

READ_TIMEOUT_S = 120


def read_topic(bootstrap, topic, partitions):
    """Every record of the topic: (partition, offset, value bytes), up to the high watermarks
    read before starting (nothing writes to the topic any more)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-reader-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    ends = {}
    for p in range(partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        ends[p] = high
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    positions = {p: 0 for p in range(partitions)}
    records = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while any(positions[p] < ends[p] for p in positions):
        if time.monotonic() > deadline:
            consumer.close()
            raise SystemExit(
                f"chaos report: the topic was not read to its end in {READ_TIMEOUT_S} s: "
                f"positions {positions}, high watermarks {ends}"
            )
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise SystemExit(f"chaos report: consuming failed: {message.error()}")
        records.append((message.partition(), message.offset(), message.value()))
        positions[message.partition()] = message.offset() + 1
    consumer.close()
    return records, ends


def read_lines(path):
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--out", required=True, help="the directory load.py wrote to")
    parser.add_argument("--seconds", type=float, required=True, help="duration of the run")
    parser.add_argument("--proxy-crashes", type=int, default=0)
    parser.add_argument("--proxy-unclean-exits", type=int, default=0)
    parser.add_argument("--broker-panics", type=int, default=0)
    args = parser.parse_args()
    out = args.out

    acked = {}
    for record_id, partition, offset, t_ms in read_lines(os.path.join(out, "acked.log")):
        acked[record_id] = (int(partition), int(offset), int(t_ms))
    failed = {record_id: code for record_id, code in read_lines(os.path.join(out, "failed.log"))}
    unknown = {fields[0] for fields in read_lines(os.path.join(out, "unknown.log"))}
    requests = [(int(t), outcome) for t, outcome in read_lines(os.path.join(out, "requests.log"))]
    with open(os.path.join(out, "load.json")) as f:
        load = json.load(f)

    records, ends = read_topic(args.bootstrap, args.topic, args.partitions)
    found = collections.Counter()
    places = collections.defaultdict(set)
    foreign = 0
    for partition, offset, value in records:
        try:
            record_id = json.loads(value)["id"]
        except (TypeError, ValueError, KeyError):
            foreign += 1
            continue
        found[record_id] += 1
        places[record_id].add((partition, offset))

    missing = sorted(i for i in acked if i not in found)
    # An offset of -1 is librdkafka's (and Java's) "written, offset unknown": the retry of a
    # batch whose first send was written without its answer arriving got
    # DUPLICATE_SEQUENCE_NUMBER. Such a record must still be on its partition.
    offset_unknown = sorted(i for i in acked if acked[i][1] < 0)
    misplaced = sorted(
        i
        for i in acked
        if i in found
        and (
            acked[i][:2] not in places[i]
            if acked[i][1] >= 0
            else all(p != acked[i][0] for p, _ in places[i])
        )
    )
    duplicates = sorted(i for i, n in found.items() if n > 1)
    acked_duplicates = [i for i in duplicates if i in acked]
    written_after_failure = collections.Counter(failed[i] for i in found if i in failed)
    written_unknown = sum(1 for i in found if i in unknown)
    never_sent = sum(1 for i in found if i not in acked and i not in failed and i not in unknown)

    cycles = []
    cycle_lines = read_lines(os.path.join(out, "cycles.log"))
    ack_times = sorted(t for _, _, t in acked.values())
    for n, (kind, start, end) in enumerate(cycle_lines):
        start, end = int(start), int(end)
        window_end = int(cycle_lines[n + 1][1]) if n + 1 < len(cycle_lines) else float("inf")
        answers = collections.Counter(o for t, o in requests if start <= t < window_end)
        after = bisect.bisect_left(ack_times, end)
        first_ack = ack_times[after] if after < len(ack_times) else None
        cycles.append(
            {
                "kind": kind,
                "seconds": round((end - start) / 1000, 1),
                "answers_until_next_cycle": dict(sorted(answers.items())),
                "first_ack_after_s": None if first_ack is None else round((first_ack - end) / 1000, 2),
            }
        )
    cycles_done = collections.Counter(c["kind"] for c in cycles)

    report = {
        "acknowledged": len(acked),
        "found": len(found),
        "missing": len(missing),
        "missing_ids": missing[:20],
        "misplaced": len(misplaced),
        "misplaced_ids": misplaced[:20],
        "acknowledged_offset_unknown": len(offset_unknown),
        "acknowledged_offset_unknown_ids": offset_unknown[:20],
        "duplicates": len(duplicates),
        "duplicate_ids": duplicates[:20],
        "acknowledged_duplicates": len(acked_duplicates),
        "records_in_topic": len(records),
        "foreign_records": foreign,
        "written_after_failure": dict(sorted(written_after_failure.items())),
        "written_without_answer": written_unknown,
        "written_never_sent": never_sent,
        "records_sent": load["records"],
        "requests": load["requests"],
        "statuses": load["statuses"],
        "record_errors": load["record_errors"],
        "connection_errors": load["connection_errors"],
        "cycles_done": dict(sorted(cycles_done.items())),
        "cycles": cycles,
        "proxy_crashes": args.proxy_crashes,
        "proxy_unclean_exits": args.proxy_unclean_exits,
        "broker_panics": args.broker_panics,
        "high_watermarks": [ends[p] for p in range(args.partitions)],
        "duration_s": args.seconds,
    }
    ok = not missing and not misplaced and not args.proxy_crashes and not args.proxy_unclean_exits
    report["ok"] = ok

    print(f"chaos: {args.seconds:.0f} s, cycles {dict(sorted(cycles_done.items()))}")
    print(f"chaos: requests {load['requests']}, by status {load['statuses']}, "
          f"connection errors {load['connection_errors']}, record errors {load['record_errors']}")
    print(f"chaos: ids acknowledged {len(acked)}, found {len(found)}, "
          f"acknowledged but missing {len(missing)}, misplaced {len(misplaced)}, "
          f"acknowledged with offset -1 {len(offset_unknown)}")
    print(f"chaos: duplicates {len(duplicates)} (of acknowledged ids: {len(acked_duplicates)}), "
          f"written after a failure answer {dict(written_after_failure)}, "
          f"written without an answer {written_unknown}")
    for c in cycles:
        print(f"chaos:   {c['kind']:<14} {c['seconds']:>5} s, then first ack after "
              f"{c['first_ack_after_s']} s; answers until the next cycle {c['answers_until_next_cycle']}")
    print(json.dumps(report, separators=(",", ":")))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
