"""Decodes Schema Registry framed values with Confluent's own Python deserializers.

The integration tests check that what the proxy writes to Kafka is what a partner's
consumer reads, so the reading is done by Confluent's client, not by code of ours:

    confluent_decode.py REGISTRY_URL [USER:PASSWORD] < items > values

Each input line is a JSON object {"format": "avro" | "jsonschema" | "protobuf",
"topic": "...", "is_key": false, "hex": "..."}; each output line is the decoded value or
{"error": "..."} when that one value cannot be decoded. The deserializers fetch the writer
schema from the registry by the id in the frame, under the topic's subject (TopicNameStrategy,
as configured by default), the way a consumer does.

Decoded values are printed as JSON a test can compare with what the partner sent:
- Avro: the plain value fastavro returns, unions unwrapped ({"string": "x"} in the partner's
  Avro JSON is "x" here); bytes and fixed as strings of code points 0-255 (latin-1), as the
  Avro JSON encoding writes them; logical types as fastavro converts them, rendered as
  strings: timestamps, dates and times in ISO 8601, decimals and uuids as their text.
- JSON Schema: the value as decoded (the deserializer also validates it against the schema).
- Protobuf: the proto3 JSON mapping of google.protobuf.json_format.MessageToDict with the
  field names of the .proto; fields at their default value are left out, 64-bit integers
  are strings and bytes are base64, as that mapping has it.
"""

import base64
import datetime
import decimal
import importlib
import io
import json
import sys
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.schema_registry.serde import SchemaId
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def plain(value):
    """Makes what fastavro returns printable as JSON (see the module doc)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


class Protobuf:
    """Protobuf values: the deserializer needs the message class up front, so the class is
    built here from the FileDescriptorProto the registry serves for the frame's schema id
    (as `format=serialized`, which is what the deserializer asks for too), never from protoc
    output."""

    def __init__(self, registry):
        self.registry = registry
        self.deserializers = {}

    def decode(self, data, ctx, subject):
        frame = SchemaId("PROTOBUF")
        frame.from_bytes(io.BytesIO(data))
        indexes = tuple(frame.message_indexes or [0])
        key = (frame.id, indexes)
        if key not in self.deserializers:
            schema = self.registry.get_schema(frame.id, subject, "serialized")
            message_class = self.message_class(schema.schema_str, indexes)
            self.deserializers[key] = ProtobufDeserializer(
                message_class, {"use.deprecated.format": False}, self.registry
            )
        message = self.deserializers[key](data, ctx)
        return json_format.MessageToDict(message, preserving_proto_field_name=True)

    @staticmethod
    def message_class(serialized, indexes):
        file = descriptor_pb2.FileDescriptorProto()
        file.ParseFromString(base64.standard_b64decode(serialized))
        pool = descriptor_pool.DescriptorPool()
        for dependency in file.dependency:
            # Only the well-known types can be imported: the double has no references.
            module = "google.protobuf." + dependency.rsplit("/", 1)[-1][: -len(".proto")] + "_pb2"
            pool.AddSerializedFile(importlib.import_module(module).DESCRIPTOR.serialized_pb)
        pool.Add(file)
        # The message indexes walk from the file's top-level messages into nested ones.
        message = file.message_type[indexes[0]]
        name = message.name
        for index in indexes[1:]:
            message = message.nested_type[index]
            name += "." + message.name
        full_name = f"{file.package}.{name}" if file.package else name
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def main():
    conf = {"url": sys.argv[1]}
    if len(sys.argv) > 2:
        conf["basic.auth.user.info"] = sys.argv[2]
    registry = SchemaRegistryClient(conf)
    avro = AvroDeserializer(registry)
    jsonschema = JSONDeserializer(None, schema_registry_client=registry)
    protobuf = Protobuf(registry)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            field = MessageField.KEY if item.get("is_key") else MessageField.VALUE
            ctx = SerializationContext(item["topic"], field)
            data = bytes.fromhex(item["hex"])
            if item["format"] == "avro":
                value = plain(avro(data, ctx))
            elif item["format"] == "jsonschema":
                value = jsonschema(data, ctx)
            elif item["format"] == "protobuf":
                subject = f"{item['topic']}-{'key' if item.get('is_key') else 'value'}"
                value = protobuf.decode(data, ctx, subject)
            else:
                raise ValueError(f"unknown format {item['format']!r}")
        except Exception as error:  # noqa: BLE001 - each value reports its own failure
            value = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(value), flush=True)


if __name__ == "__main__":
    main()
