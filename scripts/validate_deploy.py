#!/usr/bin/env python3
"""Schema checks of the deployment files, offline (no AWS credentials, no network).

Run by scripts/validate-deploy.sh inside its venv (ecs-composex 1.1.9 installed):

  (a) docker-compose.yaml alone, and the local stack (docker-compose.yaml +
      docker-compose.override.yaml, merged as `docker compose` does), against the
      compose-spec JSON schema shipped in ecs_composex/specs/compose-spec.json;
  (b) docker-compose.yaml + aws.yaml, merged and interpolated by Compose-X's own loader
      (compose_x_render.ComposeDefinition, what `ecs-compose-x` runs first), against
      Compose-X's compose-spec (Draft 7, as ecs_composex validates it), then every x-*
      section against the module's own *.spec.json from the ecs_composex package:
        - top-level x-vpc, x-cluster: the whole section;
        - other top-level x-<module>: each named resource (as the module loads them);
        - secrets.<name>.x-secrets: secrets.x-secrets.spec.json;
        - services.<name>.x-<key>: specs/services.x-<key>.spec.json;
      plus the cross-references Compose-X resolves at render time (x-elbv2 Services keys
      name an existing family:container, listener targets name a declared service).
  (c) x-elasticache, for which ecs_composex ships no spec (1.1.9 logs "JSON Schema not found
      for validation" and renders whatever it is given): the keys its elasticache module
      reads (ELASTICACHE_SPEC below, a transcription, used only while the package has no
      x-elasticache.spec.json of its own); Properties typed as the module types them
      (CacheCluster, else ReplicationGroup, by troposphere's property names) and checked by
      cfn-lint as that CloudFormation resource with what Compose-X adds (subnet group,
      security group, parameter group); the ElastiCache API rules the resource schema does
      not carry (AuthToken needs TransitEncryptionEnabled, automatic failover needs two
      nodes, Multi-AZ needs automatic failover, a node type the region offers); Services
      naming a family or service (otherwise no security group ingress is made) and no
      ReturnValues (1.1.9 ignores them for x-elasticache);
  (d) the Idempotency-Key store wiring: a service with KRP_IDEMPOTENCY__STORE=redis has a
      host, TLS, and its AUTH token from the same secret and key as the linked cluster's
      AuthToken, on the cluster's port; and no ${VAR:-} or ${VAR:?...} in aws.yaml (Compose-X
      1.1.9 turns both into an empty string, whatever the variable holds).

The spec files reference each other by relative names ("ingress.spec.json",
"x-resources.common.spec.json#/definitions/Lookup"). Every spec is registered in one
referencing.Registry under the base URI of ecs_composex's spec directory, so those
references resolve to the files shipped with the package; anything else is an error
(nothing is ever fetched).

Exit status 0 when everything validates; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from jsonschema import Draft7Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

try:
    from importlib.resources import files as pkg_files
except ImportError:  # pragma: no cover
    from importlib_resources import files as pkg_files  # type: ignore

ROOT = Path(__file__).resolve().parent.parent
BASE_COMPOSE = "docker-compose.yaml"
LOCAL_OVERRIDE = "docker-compose.override.yaml"
AWS_OVERRIDE = "aws.yaml"

# Sections validated whole (one per deployment), not per named resource.
SINGLETON_SECTIONS = {"x-vpc", "x-cluster", "x-tags"}

# Example values for the variables aws.yaml reads, so that interpolated values are checked
# against the schemas' patterns. The caller's environment wins.
EXAMPLE_ENV = {
    "REGISTRY_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "IMAGE_TAG": "0.1.0",
    "VPC_ID": "vpc-0123456789abcdef0",
    "VPC_CIDR": "10.0.0.0/16",
    "ECS_CLUSTER_NAME": "kafka-rest-proxy",
    "KAFKA_CREDS_SECRET_NAME": "kafka-rest-proxy/kafka-creds",
    "POLICY_SECRET_NAME": "kafka-rest-proxy/policy",
    "REDIS_HOST": "master.kafka-rest-proxy-idempotency.abc123.euw1.cache.amazonaws.com",
}

# Region whose ElastiCache node types and resource schemas the x-elasticache checks use.
CFN_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "eu-west-1"

# x-elasticache as ecs_composex 1.1.9's elasticache module reads it (elasticache_stack.py,
# elasticache_template.py, compose/x_resources): it ships no spec, so this transcription
# stands in for one until the package has its own x-elasticache.spec.json (preferred then).
ELASTICACHE_SPEC_NAME = "x-elasticache.spec.json"
ELASTICACHE_SPEC = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "x-elasticache (project transcription of ecs_composex 1.1.9)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "Properties": {
            "type": "object",
            "description": "AWS::ElastiCache::CacheCluster or ::ReplicationGroup properties "
                           "(checked by cfn-lint)",
        },
        "MacroParameters": {"$ref": "#/definitions/MacroParameters"},
        "Settings": {"$ref": "x-resources.common.spec.json#/definitions/Settings"},
        "Services": {"$ref": "#/definitions/Services"},
        "Lookup": {"$ref": "x-resources.common.spec.json#/definitions/Lookup"},
    },
    "anyOf": [{"required": ["Properties"]}, {"required": ["MacroParameters"]},
              {"required": ["Lookup"]}],
    "definitions": {
        "MacroParameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "Engine": {"type": "string", "enum": ["redis", "memcached"]},
                "EngineVersion": {"type": "string"},
                "CacheNodeType": {"type": "string"},
                "NumCacheNodes": {"type": "integer", "minimum": 1},
                "Subnets": {"type": "string"},
                "ParameterGroup": {
                    "type": "object",
                    "description": "AWS::ElastiCache::ParameterGroup properties "
                                   "(checked by cfn-lint)",
                },
            },
        },
        "Services": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "Access": {},
                    "ReturnValues": {"type": "object"},
                },
            },
        },
    },
}

problems: list[str] = []


def problem(where: str, message: str) -> None:
    line = f"{where}: {message}"
    if line not in problems:  # a value checked by two subschemas fails twice
        problems.append(line)


def fmt_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document root)"


def report_errors(where: str, prefix: str, validator, instance) -> None:
    """Every schema error, deepest-first best match per branch, with its path."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    for error in errors:
        best = jsonschema.exceptions.best_match([error])
        path = fmt_path([*([prefix] if prefix else []), *best.absolute_path])
        message = best.message
        if best.validator == "additionalProperties" and isinstance(best.instance, dict):
            allowed = set((best.schema.get("properties") or {}))
            patterns = list((best.schema.get("patternProperties") or {}))
            unknown = sorted(k for k in best.instance if k not in allowed and not any(
                re.search(p, k) for p in patterns))
            if unknown:
                message = f"unknown key(s) {', '.join(map(repr, unknown))}"
        if isinstance(best.instance, (dict, list)):
            # "[{...whole value...}] is not of type 'object'" -> "a list is not of type ..."
            kind = "a mapping" if isinstance(best.instance, dict) else "a list"
            message = message.replace(repr(best.instance), kind)
        if len(message) > 400:
            message = message[:400] + "..."
        problem(where, f"{path}: {message}")


# ---------------------------------------------------------------------------------------
# ecs_composex's schemas


def spec_files() -> dict[str, Path]:
    """Every *.spec.json of the ecs_composex package, by file name."""
    package = Path(str(pkg_files("ecs_composex")))
    found: dict[str, Path] = {}
    for path in sorted(package.rglob("*.spec.json")):
        if path.name in found:
            raise SystemExit(f"two spec files named {path.name}: {found[path.name]}, {path}")
        found[path.name] = path
    if not found:
        raise SystemExit(f"no ecs_composex spec files under {package}")
    return found


class Specs:
    def __init__(self) -> None:
        self.files = spec_files()
        self.spec_dir = Path(str(pkg_files("ecs_composex"))) / "specs"
        # Base URI of the spec directory: relative $ids and $refs resolve against it.
        self.base_uri = self.spec_dir.as_uri() + "/"
        self.schemas: dict[str, dict] = {}
        resources = []
        for name, path in self.files.items():
            contents = json.loads(path.read_text(encoding="utf-8-sig"))
            # Some specs carry another file's $id (services.x-codeguru_profiler.spec.json
            # says services.x-logging.spec.json): the file name is the identity here.
            contents["$id"] = self.base_uri + name
            self.schemas[name] = contents
            resources.append((contents["$id"], DRAFT7.create_resource(contents)))
        # Stand-ins for modules that ship no spec; the package's own wins when it has one.
        self.project_specs: list[str] = []
        if ELASTICACHE_SPEC_NAME not in self.schemas:
            contents = dict(ELASTICACHE_SPEC, **{"$id": self.base_uri + ELASTICACHE_SPEC_NAME})
            self.schemas[ELASTICACHE_SPEC_NAME] = contents
            self.project_specs.append(ELASTICACHE_SPEC_NAME)
            resources.append((contents["$id"], DRAFT7.create_resource(contents)))
        compose_spec = json.loads((self.spec_dir / "compose-spec.json").read_text())
        self.compose_spec = compose_spec

        def retrieve(uri: str) -> Resource:
            raise NoSuchResource(ref=uri)

        self.registry = Registry(retrieve=retrieve).with_resources(resources)

    def validator(self, name: str) -> Draft7Validator:
        return Draft7Validator(self.schemas[name], registry=self.registry)

    def module_spec(self, section: str) -> str | None:
        name = f"{section}.spec.json"
        return name if name in self.schemas else None

    def service_spec(self, key: str) -> str | None:
        # By the spec's own "id" ("services.x-xray" lives in services-xray.spec.json).
        for name, schema in self.schemas.items():
            if schema.get("id") == f"services.{key}":
                return name
        name = f"services.{key}.spec.json"
        return name if name in self.schemas else None


# ---------------------------------------------------------------------------------------
# compose files


def load_yaml(path: Path) -> Any:
    try:
        with path.open() as fd:
            return yaml.safe_load(fd)
    except (OSError, yaml.YAMLError) as e:
        problem(path.name, f"cannot be read as YAML: {e}")
        return None


def compose_load(files: list[Path], interpolate_first: bool = False) -> dict | None:
    """Merge and interpolate as Compose-X does (which is also how compose merges mappings:
    deep-merge, the later file wins), without its built-in schema check (done below).
    Compose-X parses `ports` before it interpolates; `docker compose` interpolates each file
    first (interpolate_first)."""
    from compose_x_render import compose_x_render as render

    where = " + ".join(p.name for p in files)
    try:
        documents = [render.load_compose_file(str(path)) for path in files]
        if interpolate_first:
            for document in documents:
                render.interpolate_env_vars(document, "")
        definition = documents[0]
        for document in documents[1:]:
            render.merge_config_files(definition, document)
        if isinstance(definition.get("services"), dict):
            render.render_services_ports(definition["services"])
        render.interpolate_env_vars(definition, "")
    except Exception as e:  # the loader raises plain TypeError/ValueError on bad shapes
        problem(where, f"cannot be merged: {type(e).__name__}: {e}")
        return None
    return definition


def interpolate(document: Any) -> Any:
    from compose_x_render.compose_x_render import interpolate_env_vars

    document = copy.deepcopy(document)
    if isinstance(document, dict):
        interpolate_env_vars(document, "")
    return document


def check_compose_spec(where: str, document: Any, schema: dict) -> None:
    cls = validator_for(schema)
    report_errors(where, "", cls(schema), document)


def check_local_stack(specs: Specs) -> None:
    base = load_yaml(ROOT / BASE_COMPOSE)
    if base is None:
        return
    check_compose_spec(BASE_COMPOSE, interpolate(base), specs.compose_spec)
    override = ROOT / LOCAL_OVERRIDE
    if override.exists() and load_yaml(override) is not None:
        merged = compose_load([ROOT / BASE_COMPOSE, override], interpolate_first=True)
        if merged is not None:
            where = f"{BASE_COMPOSE} + {LOCAL_OVERRIDE}"
            check_compose_spec(where, merged, specs.compose_spec)
            check_depends_on(where, merged)


def check_depends_on(where: str, doc: dict) -> None:
    services = doc.get("services") or {}
    for name, service in services.items():
        deps = (service or {}).get("depends_on") or {}
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if dep not in services:
                problem(where, f"services.{name}.depends_on: no service named {dep!r}")


# ---------------------------------------------------------------------------------------
# the Compose-X deployment (docker-compose.yaml + aws.yaml)


def check_aws(specs: Specs) -> None:
    where = f"{BASE_COMPOSE} + {AWS_OVERRIDE}"
    if load_yaml(ROOT / AWS_OVERRIDE) is None:
        return
    check_blanking_interpolations(AWS_OVERRIDE, (ROOT / AWS_OVERRIDE).read_text())
    for key, value in EXAMPLE_ENV.items():
        os.environ.setdefault(key, value)
    doc = compose_load([ROOT / BASE_COMPOSE, ROOT / AWS_OVERRIDE])
    if doc is None:
        return
    # What ecs_composex.common.settings.ComposeXSettings.set_content does.
    report_errors(where, "", Draft7Validator(specs.compose_spec, registry=specs.registry), doc)

    services = doc.get("services") if isinstance(doc.get("services"), dict) else {}
    for section, body in doc.items():
        if not section.startswith("x-"):
            continue
        spec = specs.module_spec(section)
        if spec is None:
            problem(where, f"{section}: no Compose-X module spec {section}.spec.json "
                           "(unknown extension, or a typo)")
            continue
        if section in SINGLETON_SECTIONS:
            report_errors(where, section, specs.validator(spec), body)
            continue
        if not isinstance(body, dict):
            problem(where, f"{section}: expected a mapping of resource names, got "
                           f"{type(body).__name__}")
            continue
        for resource, definition in body.items():
            if resource.startswith("x-"):
                continue
            report_errors(where, f"{section}.{resource}", specs.validator(spec), definition)

    for name, secret in (doc.get("secrets") or {}).items():
        if isinstance(secret, dict) and "x-secrets" in secret:
            report_errors(where, f"secrets.{name}.x-secrets",
                          specs.validator("secrets.x-secrets.spec.json"), secret["x-secrets"])

    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        for key, value in service.items():
            if not key.startswith("x-"):
                continue
            spec = specs.service_spec(key)
            if spec is None:
                problem(where, f"services.{name}.{key}: no Compose-X spec "
                               f"services.{key}.spec.json (unknown extension, or a typo)")
                continue
            report_errors(where, f"services.{name}.{key}", specs.validator(spec), value)
        for secret in service.get("secrets") or []:
            source = secret.get("source") if isinstance(secret, dict) else secret
            if source not in (doc.get("secrets") or {}):
                problem(where, f"services.{name}.secrets: {source!r} is not declared "
                               "under the top-level secrets")

    check_elbv2_targets(where, doc, services)
    check_secure_by_default(where, services)
    check_tracing(where, services)
    check_elasticache(where, doc, services)
    check_idempotency_store(where, doc, services)


def proxy_services(services: dict) -> dict:
    """The services that run this project's image (not its sidecars)."""
    return {name: service for name, service in services.items()
            if isinstance(service, dict) and "kafka-rest-proxy" in str(service.get("image", ""))}


def environment_of(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env if "=" in item)
    return env


def check_secure_by_default(where: str, services: dict) -> None:
    """The deployed service authenticates partners: the policy arrives as a secret, and
    nothing in the deployment turns authentication off."""
    for name, service in proxy_services(services).items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env if "=" in item)
        for key, bad in (("KRP_AUTH__ENABLED", "false"),
                         ("KRP_AUTH__ALLOW_UNAUTHENTICATED", "true")):
            if str(env.get(key, "")).lower() == bad:
                problem(where, f"services.{name}.environment.{key}: {bad} deploys a service "
                               "that authenticates nobody")
        secrets = [s.get("source") if isinstance(s, dict) else s
                   for s in service.get("secrets") or []]
        if "KRP_AUTH__POLICY" not in secrets and "KRP_AUTH__POLICY_FILE" not in env:
            problem(where, f"services.{name}: no partner policy (the KRP_AUTH__POLICY "
                           "secret): the task would refuse to start")


def check_tracing(where: str, services: dict) -> None:
    """With tracing on, the proxy's spans reach X-Ray: KRP_TRACING__ENDPOINT is an OTLP
    receiver on loopback of a collector in the same task (ecs.task.family), whose
    AOT_CONFIG_CONTENT has a traces pipeline from that receiver to awsxray, and whose task
    role may write to X-Ray."""
    families = {}
    for pair in family_containers(services):
        family, container = pair.split(":", 1)
        families.setdefault(container, set()).add(family)
    for name, service in proxy_services(services).items():
        env = environment_of(service)
        if str(env.get("KRP_TRACING__ENABLED", "false")).lower() != "true":
            continue
        endpoint = str(env.get("KRP_TRACING__ENDPOINT", ""))
        protocol = str(env.get("KRP_TRACING__PROTOCOL", "http/protobuf"))
        match = re.fullmatch(r"http://(127\.0\.0\.1|localhost):(\d+)(/v1/traces)?", endpoint)
        if not match or (protocol == "http/protobuf") != bool(match.group(3)):
            problem(where, f"services.{name}.environment.KRP_TRACING__ENDPOINT: {endpoint!r} is "
                           f"not a loopback OTLP {protocol} endpoint of a sidecar "
                           "(http://127.0.0.1:4318/v1/traces, or :4317 over grpc)")
            continue
        port = match.group(2)
        receiver = "http" if protocol == "http/protobuf" else "grpc"
        found = False
        for other, sidecar in services.items():
            if other == name or not isinstance(sidecar, dict):
                continue
            if not families.get(other, set()) & families.get(name, set()):
                continue
            text = environment_of(sidecar).get("AOT_CONFIG_CONTENT")
            if text is None:
                continue
            config = yaml.safe_load(text) or {}
            listen = (((config.get("receivers") or {}).get("otlp") or {}).get("protocols")
                      or {}).get(receiver) or {}
            pipeline = ((config.get("service") or {}).get("pipelines") or {}).get("traces") or {}
            problems = []
            if not str(listen.get("endpoint", "")).endswith(f":{port}"):
                problems.append(f"its otlp {receiver} receiver is not on port {port}")
            if "otlp" not in (pipeline.get("receivers") or []):
                problems.append("its traces pipeline does not read the otlp receiver")
            if "awsxray" not in (pipeline.get("exporters") or []) or \
                    "awsxray" not in (config.get("exporters") or {}):
                problems.append("its traces pipeline does not export to awsxray")
            arns = ((sidecar.get("x-iam") or {}).get("ManagedPolicyArns") or []) + \
                ((service.get("x-iam") or {}).get("ManagedPolicyArns") or [])
            if not any(str(arn).endswith("/AWSXrayWriteOnlyAccess") for arn in arns):
                problems.append("the task role may not write to X-Ray "
                                "(x-iam ManagedPolicyArns: AWSXrayWriteOnlyAccess)")
            for message in problems:
                problem(where, f"services.{other} (the collector of {name}'s traces): {message}")
            found = True
        if not found:
            problem(where, f"services.{name}: tracing is on but no service of its task "
                           "(ecs.task.family) is an OTLP collector with AOT_CONFIG_CONTENT")


def family_containers(services: dict) -> set[str]:
    """family:container pairs as Compose-X names them (family = ecs.task.family label,
    else the service name; container = the service name)."""
    pairs = set()
    for name, service in services.items():
        labels = ((service or {}).get("deploy") or {}).get("labels") or {}
        if isinstance(labels, list):
            labels = dict(item.split("=", 1) for item in labels if "=" in item)
        families = str(labels.get("ecs.task.family", name)).split(",")
        for family in families:
            pairs.add(f"{family.strip()}:{name}")
    return pairs


def check_elbv2_targets(where: str, doc: dict, services: dict) -> None:
    known = family_containers(services)
    for lb_name, lb in (doc.get("x-elbv2") or {}).items():
        if not isinstance(lb, dict):
            continue
        lb_services = lb.get("Services")
        declared = set(lb_services) if isinstance(lb_services, dict) else set()
        for key in declared:
            if key.startswith("x-"):
                continue
            if key not in known:
                problem(where, f"x-elbv2.{lb_name}.Services.{key}: no such family:container "
                               f"(known: {', '.join(sorted(known))})")
        listeners = lb.get("Listeners") or []
        if isinstance(listeners, dict):
            listeners = list(listeners.values())
        for index, listener in enumerate(listeners if isinstance(listeners, list) else []):
            for target in (listener or {}).get("Targets") or []:
                target_name = (target or {}).get("name", "")
                if declared and target_name.split(":")[0:2] and \
                        ":".join(target_name.split(":")[0:2]) not in declared:
                    problem(where, f"x-elbv2.{lb_name}.Listeners[{index}].Targets: "
                                   f"{target_name!r} is not one of the LB's Services")


def check_blanking_interpolations(where: str, text: str) -> None:
    """Compose-X 1.1.9's envsubst (compose_x_render.envsubst) returns an empty string for
    ${VAR:-} even when VAR is set, and has no ${VAR:?message}: both blank the value."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for match in re.finditer(r"\$\{(\w+)(:-\}|:\?)", line):
            form = "${%s:-}" % match.group(1) if match.group(2) == ":-}" else \
                "${%s:?...}" % match.group(1)
            problem(where, f"line {number}: {form} is always empty under Compose-X 1.1.9 "
                           f"(write ${{{match.group(1)}}}, or give a non-empty default)")


def family_and_service_names(services: dict) -> set[str]:
    names = set(services)
    for pair in family_containers(services):
        names.add(pair.split(":", 1)[0])
    return names


def elasticache_resource_type(properties: dict) -> tuple[str | None, str]:
    """The CloudFormation type Compose-X makes of x-elasticache Properties
    (elasticache_template.determine_resource_type: CacheCluster when every key is one of its
    properties, else ReplicationGroup likewise, else none), or why there is none."""
    from troposphere.elasticache import CacheCluster, ReplicationGroup

    for cls in (CacheCluster, ReplicationGroup):
        if all(key in cls.props for key in properties):
            return cls.resource_type, ""
    unknown = sorted(k for k in properties
                     if k not in CacheCluster.props and k not in ReplicationGroup.props)
    if unknown:
        return None, f"unknown key(s) {', '.join(map(repr, unknown))}"
    cluster_only = sorted(k for k in properties if k not in ReplicationGroup.props)
    group_only = sorted(k for k in properties if k not in CacheCluster.props)
    return None, (f"keys of both a CacheCluster ({', '.join(cluster_only)}) and a "
                  f"ReplicationGroup ({', '.join(group_only)})")


def cfn_lint_resources(where: str, resources: dict[str, tuple[str, str, dict]]) -> None:
    """cfn-lint the given resources ({logical id: (report prefix, type, properties)}) in one
    template, as Compose-X renders them next to a subnet group and a security group."""
    from cfnlint.api import ManualArgs, lint

    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"VpcId": {"Type": "AWS::EC2::VPC::Id"},
                       "StorageSubnets": {"Type": "List<AWS::EC2::Subnet::Id>"}},
        "Resources": {
            "Sg": {"Type": "AWS::EC2::SecurityGroup",
                   "Properties": {"GroupDescription": "x", "VpcId": {"Ref": "VpcId"}}},
            "SubnetGroup": {"Type": "AWS::ElastiCache::SubnetGroup",
                            "Properties": {"Description": "x",
                                           "SubnetIds": {"Ref": "StorageSubnets"}}},
        },
    }
    for logical_id, (_, resource_type, properties) in resources.items():
        template["Resources"][logical_id] = {"Type": resource_type, "Properties": properties}
    for match in lint(json.dumps(template), config=ManualArgs(regions=[CFN_REGION])):
        path = [str(part) for part in match.path]
        if len(path) < 2 or path[1] not in resources:
            problem(where, f"cfn-lint {match.rule.id}: {match.message}")
            continue
        prefix = resources[path[1]][0]
        rest = path[3:] if len(path) >= 3 and path[2] == "Properties" else path[2:]
        problem(where, f"{fmt_path([prefix, *rest])}: cfn-lint {match.rule.id}: "
                       f"{match.message}")


def elasticache_node_types() -> set[str]:
    path = pkg_files("cfnlint.data.schemas.extensions.aws_elasticache_cachecluster") / \
        "cachenodetype_enum.json"
    by_region = json.loads(path.read_text())
    return set((by_region.get(CFN_REGION) or {}).get("enum") or [])


def check_elasticache(where: str, doc: dict, services: dict) -> None:
    """What Compose-X's elasticache module would render, checked the way CloudFormation and
    the ElastiCache API will judge it (x-elasticache has no Compose-X spec to do it)."""
    section = doc.get("x-elasticache")
    if not isinstance(section, dict):
        return
    names = family_and_service_names(services)
    node_types = elasticache_node_types()
    to_lint: dict[str, tuple[str, str, dict]] = {}
    for name, resource in section.items():
        if not isinstance(resource, dict):
            continue  # reported by the spec check
        prefix = f"x-elasticache.{name}"
        for target, link in (resource.get("Services") or {}).items():
            if target not in names:
                problem(where, f"{prefix}.Services.{target}: no such service or family (known: "
                               f"{', '.join(sorted(names))}); Compose-X would skip it "
                               "silently and make no security group ingress for it")
            if isinstance(link, dict) and "ReturnValues" in link:
                problem(where, f"{prefix}.Services.{target}.ReturnValues: Compose-X 1.1.9 "
                               "ignores ReturnValues for x-elasticache (it only makes the "
                               "security group ingress); set the variables in "
                               f"services.{target}.environment")
        properties = resource.get("Properties")
        macro = resource.get("MacroParameters") if isinstance(
            resource.get("MacroParameters"), dict) else {}
        if not isinstance(properties, dict) or resource.get("Lookup"):
            continue
        resource_type, why = elasticache_resource_type(properties)
        if resource_type is None:
            problem(where, f"{prefix}.Properties: neither AWS::ElastiCache::CacheCluster nor "
                           f"::ReplicationGroup properties: {why} (Compose-X types the "
                           "resource by its keys)")
            continue
        logical = re.sub(r"[^A-Za-z0-9]", "", name) or "Cache"
        rendered = dict(properties)
        rendered["CacheSubnetGroupName"] = {"Ref": "SubnetGroup"}
        sg_key = "SecurityGroupIds" if resource_type.endswith("ReplicationGroup") \
            else "VpcSecurityGroupIds"
        rendered[sg_key] = list(rendered.get(sg_key) or []) + [{"Fn::GetAtt": ["Sg", "GroupId"]}]
        if isinstance(macro.get("ParameterGroup"), dict):
            rendered["CacheParameterGroupName"] = {"Ref": f"{logical}ParameterGroup"}
            to_lint[f"{logical}ParameterGroup"] = (
                f"{prefix}.MacroParameters.ParameterGroup", "AWS::ElastiCache::ParameterGroup",
                macro["ParameterGroup"])
        to_lint[logical] = (f"{prefix}.Properties", resource_type, rendered)

        # Rules of the ElastiCache API (CreateReplicationGroup) that the CloudFormation
        # resource schema does not carry: CloudFormation would fail at deploy time.
        def truthy(key: str) -> bool:
            return str(properties.get(key, "")).lower() == "true"

        if resource_type.endswith("ReplicationGroup"):
            if "AuthToken" in properties and not truthy("TransitEncryptionEnabled"):
                problem(where, f"{prefix}.Properties.AuthToken: needs "
                               "TransitEncryptionEnabled: true")
            def number(key: str) -> int:
                try:
                    return int(properties.get(key, 0))
                except (TypeError, ValueError):
                    return 0  # not a number: cfn-lint reports the type

            if truthy("AutomaticFailoverEnabled") and not (
                    number("NumCacheClusters") >= 2 or number("ReplicasPerNodeGroup") >= 1):
                problem(where, f"{prefix}.Properties.AutomaticFailoverEnabled: needs at least "
                               "two nodes (NumCacheClusters >= 2 or ReplicasPerNodeGroup >= 1)")
            if truthy("MultiAZEnabled") and not truthy("AutomaticFailoverEnabled"):
                problem(where, f"{prefix}.Properties.MultiAZEnabled: needs "
                               "AutomaticFailoverEnabled: true")
        node_type = properties.get("CacheNodeType")
        if node_types and isinstance(node_type, str) and node_type not in node_types:
            problem(where, f"{prefix}.Properties.CacheNodeType: {node_type!r} is not an "
                           f"ElastiCache node type in {CFN_REGION}")
    if to_lint:
        cfn_lint_resources(where, to_lint)


AUTH_TOKEN_REF = re.compile(
    r"^\{\{resolve:secretsmanager:(?P<secret>[^:}]+):SecretString:(?P<key>[^:}]+)"
    r"(?::[^:}]*(?::[^:}]*)?)?\}\}$")


def check_idempotency_store(where: str, doc: dict, services: dict) -> None:
    """A service that keeps Idempotency-Key outcomes in Redis reaches the cluster linked to
    it, over TLS, with the token the cluster was created with (same secret, same key)."""
    secrets = doc.get("secrets") or {}
    clusters = doc.get("x-elasticache") if isinstance(doc.get("x-elasticache"), dict) else {}
    names_of = {}
    for name, service in services.items():
        for pair in family_containers({name: service}):
            names_of.setdefault(name, set()).update({name, pair.split(":", 1)[0]})
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env if "=" in item)
        store = env.get("KRP_IDEMPOTENCY__STORE")
        if store is None:
            continue
        here = f"services.{name}.environment"
        if str(store) not in ("memory", "redis"):
            problem(where, f"{here}.KRP_IDEMPOTENCY__STORE: {store!r} is neither memory nor "
                           "redis")
            continue
        if store != "redis":
            continue
        url = str(env.get("KRP_IDEMPOTENCY__REDIS__URL") or "")
        host = str(env.get("KRP_IDEMPOTENCY__REDIS__HOST") or "")
        if not url and not host:
            problem(where, f"{here}: KRP_IDEMPOTENCY__STORE=redis without "
                           "KRP_IDEMPOTENCY__REDIS__HOST or __URL (unset variable?)")
        if not (url.startswith("rediss://") or (
                not url and str(env.get("KRP_IDEMPOTENCY__REDIS__TLS", "")).lower() == "true")):
            problem(where, f"{here}: the Redis store is reached without TLS "
                           "(KRP_IDEMPOTENCY__REDIS__TLS: \"true\", or a rediss:// URL)")
        # The token: a secret of the service whose JsonKeys map a key to the variable.
        token = None
        for source in [s.get("source") if isinstance(s, dict) else s
                       for s in service.get("secrets") or []]:
            x_secret = (secrets.get(source) or {}).get("x-secrets") or {}
            for mapping in x_secret.get("JsonKeys") or []:
                if mapping.get("VarName") == "KRP_IDEMPOTENCY__REDIS__AUTH_TOKEN":
                    token = (source, x_secret.get("Name"), mapping.get("SecretKey"))
        if token is None:
            problem(where, f"services.{name}.secrets: no secret maps a JSON key to "
                           "KRP_IDEMPOTENCY__REDIS__AUTH_TOKEN (the cluster's AUTH token)")
        linked = [(cluster_name, cluster) for cluster_name, cluster in clusters.items()
                  if isinstance(cluster, dict)
                  and set(cluster.get("Services") or {}) & names_of.get(name, set())]
        if not linked:
            problem(where, f"services.{name}: KRP_IDEMPOTENCY__STORE=redis but no "
                           "x-elasticache resource lists it under Services (no security "
                           "group ingress: the tasks could not connect)")
            continue
        for cluster_name, cluster in linked:
            properties = cluster.get("Properties") or {}
            prefix = f"x-elasticache.{cluster_name}.Properties"
            if str(properties.get("TransitEncryptionEnabled", "")).lower() != "true":
                problem(where, f"{prefix}.TransitEncryptionEnabled: the idempotency store "
                               "must require TLS")
            match = AUTH_TOKEN_REF.match(str(properties.get("AuthToken", "")))
            if not match:
                problem(where, f"{prefix}.AuthToken: expected a Secrets Manager reference "
                               "{{resolve:secretsmanager:NAME:SecretString:KEY}}")
            elif token is not None and (match.group("secret"), match.group("key")) != \
                    (token[1], token[2]):
                problem(where, f"{prefix}.AuthToken: the cluster's token is "
                               f"{match.group('secret')}:{match.group('key')} but "
                               f"KRP_IDEMPOTENCY__REDIS__AUTH_TOKEN comes from "
                               f"secrets.{token[0]} ({token[1]}:{token[2]})")
            port = env.get("KRP_IDEMPOTENCY__REDIS__PORT")
            if port is not None and str(port) != str(properties.get("Port", 6379)):
                problem(where, f"{here}.KRP_IDEMPOTENCY__REDIS__PORT: {port} but "
                               f"{prefix}.Port is {properties.get('Port', 6379)}")


def main() -> int:
    specs = Specs()
    check_local_stack(specs)
    check_aws(specs)
    if problems:
        print("deployment files do not validate:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    packaged = len(specs.schemas) - len(specs.project_specs)
    extra = f" + project {', '.join(specs.project_specs)}" if specs.project_specs else ""
    print(f"compose files valid against compose-spec and ecs_composex "
          f"{packaged} module specs{extra} ({BASE_COMPOSE}, {LOCAL_OVERRIDE}, "
          f"{AWS_OVERRIDE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
