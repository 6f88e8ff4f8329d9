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


def check_secure_by_default(where: str, services: dict) -> None:
    """The deployed service authenticates partners: the policy arrives as a secret, and
    nothing in the deployment turns authentication off."""
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
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


def main() -> int:
    specs = Specs()
    check_local_stack(specs)
    check_aws(specs)
    if problems:
        print("deployment files do not validate:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"compose files valid against compose-spec and ecs_composex "
          f"{len(specs.schemas)} module specs ({BASE_COMPOSE}, {LOCAL_OVERRIDE}, "
          f"{AWS_OVERRIDE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
