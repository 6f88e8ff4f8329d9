//! `GET /openapi.json` and `GET /v3/openapi.json`: the OpenAPI 3.1 document of the service.
//!
//! The document is `openapi/openapi.json`, kept beside the code and checked against it: the
//! integration tests compare its paths with the route table ([`super::route_list`]) both
//! ways and run schemathesis against the served copy. It describes every route with the
//! statuses, headers and bodies each can answer, v2 and v3.
//!
//! At startup it is tailored to this deployment, once, so that it is true for whoever reads
//! it: the security schemes in use (none with authentication off; the API key header's
//! configured name; bearer JWT only with an issuer; mutual TLS only with client
//! certificates), `security: []` on `auth.anonymous_paths`, `/metrics` only when served on
//! this listener, and the avro, jsonschema and protobuf inputs (marked `x-schema-registry`
//! in the source) only with a Schema Registry.
//!
//! It is served without credentials, as Confluent publishes its own API description: it
//! names routes and shapes that are public anyway, and a partner's tooling needs it before
//! it can authenticate. The network allowlist still applies (see `authenticate`).

use actix_web::{web, HttpResponse};
use serde_json::{Map, Value};

use crate::config::Settings;

/// The document as written, before tailoring.
const SOURCE: &str = include_str!("../../openapi/openapi.json");

/// The paths that serve the document.
const PATHS: [&str; 2] = ["/openapi.json", "/v3/openapi.json"];

/// Marks a part of the source that only a deployment with a Schema Registry accepts.
const SCHEMA_REGISTRY_MARKER: &str = "x-schema-registry";

/// Whether `path` serves the document.
pub fn is_document(path: &str) -> bool {
    PATHS.contains(&path)
}

/// The tailored document, serialized once.
pub struct ApiDocument {
    json: web::Bytes,
}

impl ApiDocument {
    pub fn new(settings: &Settings) -> ApiDocument {
        let json = serde_json::to_vec(&tailored(settings)).expect("a JSON value serializes");
        ApiDocument { json: json.into() }
    }
}

/// `GET /openapi.json`, `GET /v3/openapi.json`.
pub async fn document(document: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime::APPLICATION_JSON)
        .body(document.json.clone())
}

/// The source document, told what this deployment serves and how it authenticates.
fn tailored(settings: &Settings) -> Value {
    let mut doc: Value =
        serde_json::from_str(SOURCE).expect("openapi/openapi.json is JSON (unit-tested)");
    doc["info"]["version"] = env!("CARGO_PKG_VERSION").into();
    let paths = doc["paths"]
        .as_object_mut()
        .expect("the document has paths");
    if !settings.metrics.serve_on_api_listener {
        paths.remove("/metrics");
    }
    schema_registry_parts(&mut doc, settings.schema_registry.enabled());
    security(&mut doc, settings);
    if settings.tracing.enabled {
        trace_headers(&mut doc);
    }
    doc
}

/// With tracing on, every answer carries the server span's `traceparent`.
fn trace_headers(doc: &mut Value) {
    // First: the walk also meets `components.headers`, which names X-Request-Id.
    add_beside_request_id(doc);
    doc["components"]["headers"]["traceparent"] = serde_json::json!({
        "description": "The W3C trace context of this request's server span (tracing is on \
            here): the caller's trace continued from its own `traceparent` or API Gateway's \
            `X-Amzn-Trace-Id`, else a new one. The records the request produced carry a \
            `traceparent` of the same trace.",
        "required": true,
        "schema": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"}
    });
}

/// Adds the `traceparent` header wherever a response's headers name `X-Request-Id`, which
/// every answer carries (in operations and in the shared responses).
fn add_beside_request_id(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(headers) = map.get_mut("headers").and_then(Value::as_object_mut) {
                if headers.contains_key("X-Request-Id") {
                    headers.insert(
                        "traceparent".to_owned(),
                        serde_json::json!({"$ref": "#/components/headers/traceparent"}),
                    );
                }
            }
            map.values_mut().for_each(add_beside_request_id);
        }
        Value::Array(items) => items.iter_mut().for_each(add_beside_request_id),
        _ => {}
    }
}

/// Keeps the parts marked [`SCHEMA_REGISTRY_MARKER`] (without the marker) when there is a
/// registry, else removes them: without one, those inputs are always refused (42206).
fn schema_registry_parts(value: &mut Value, registry: bool) {
    let marked = |v: &Value| v.get(SCHEMA_REGISTRY_MARKER).is_some();
    match value {
        Value::Object(map) => {
            map.remove(SCHEMA_REGISTRY_MARKER);
            if !registry {
                map.retain(|_, v| !marked(v));
            }
            map.values_mut()
                .for_each(|v| schema_registry_parts(v, registry));
        }
        Value::Array(items) => {
            if !registry {
                items.retain(|v| !marked(v));
            }
            items
                .iter_mut()
                .for_each(|v| schema_registry_parts(v, registry));
        }
        _ => {}
    }
}

/// The security schemes this deployment accepts, the requirement that any one of them
/// satisfies, and the operations open without credentials.
fn security(doc: &mut Value, settings: &Settings) {
    let auth = &settings.auth;
    let components = doc["components"]
        .as_object_mut()
        .expect("the document has components");
    if !auth.enabled {
        components.remove("securitySchemes");
        doc.as_object_mut()
            .expect("the document is an object")
            .remove("security");
        for operation in operations(doc) {
            operation.remove("security");
        }
        return;
    }
    let schemes = components["securitySchemes"]
        .as_object_mut()
        .expect("the document has security schemes");
    schemes["apiKey"]["name"] = auth.api_key_header.clone().into();
    if auth.jwt.issuer.is_none() {
        schemes.remove("bearerAuth");
    }
    if !auth.client_certificates {
        schemes.remove("mutualTLS");
    }
    let in_use: Vec<String> = schemes.keys().cloned().collect();
    doc["security"]
        .as_array_mut()
        .expect("the document has a security requirement")
        .retain(|requirement| {
            requirement
                .as_object()
                .is_some_and(|r| r.keys().all(|scheme| in_use.contains(scheme)))
        });
    for (path, item) in doc["paths"]
        .as_object_mut()
        .expect("the document has paths")
    {
        if auth.anonymous_paths.iter().any(|open| open == path) {
            for operation in path_operations(item) {
                operation.insert("security".to_owned(), Value::Array(Vec::new()));
            }
        }
    }
}

/// The HTTP methods a path item may describe.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn path_operations(item: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    item.as_object_mut()
        .into_iter()
        .flat_map(|item| item.iter_mut())
        .filter(|(key, _)| METHODS.contains(&key.as_str()))
        .filter_map(|(_, operation)| operation.as_object_mut())
}

fn operations(doc: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .flat_map(path_operations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tailored_with(change: impl FnOnce(&mut Settings)) -> Value {
        let mut settings = Settings::default();
        change(&mut settings);
        tailored(&settings)
    }

    fn schemes(doc: &Value) -> Vec<&str> {
        doc["components"]["securitySchemes"]
            .as_object()
            .map(|s| s.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_source_is_an_openapi_3_1_document() {
        let doc: Value = serde_json::from_str(SOURCE).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().unwrap().len() > 10);
    }

    #[test]
    fn without_authentication_nothing_asks_for_credentials() {
        let doc = tailored_with(|_| {});
        assert!(doc.get("security").is_none());
        assert!(schemes(&doc).is_empty());
        assert!(!doc.to_string().contains("\"security\""), "{doc}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_schemes_in_use_and_the_configured_api_key_header() {
        let doc = tailored_with(|s| {
            s.auth.enabled = true;
            s.auth.api_key_header = "X-Partner-Key".into();
        });
        assert_eq!(schemes(&doc), ["apiKey"]);
        assert_eq!(
            doc["components"]["securitySchemes"]["apiKey"]["name"],
            "X-Partner-Key"
        );
        assert_eq!(doc["security"], serde_json::json!([{"apiKey": []}]));
        assert_eq!(
            doc["paths"]["/healthz"]["get"]["security"],
            serde_json::json!([])
        );
        assert!(doc["paths"]["/topics"]["get"].get("security").is_none());

        let doc = tailored_with(|s| {
            s.auth.enabled = true;
            s.auth.jwt.issuer = Some("https://idp.example.com".into());
            s.auth.client_certificates = true;
            s.auth.anonymous_paths = vec!["/topics".into()];
        });
        assert_eq!(schemes(&doc), ["apiKey", "bearerAuth", "mutualTLS"]);
        assert_eq!(doc["security"].as_array().unwrap().len(), 3);
        assert_eq!(
            doc["paths"]["/topics"]["get"]["security"],
            serde_json::json!([])
        );
    }

    #[test]
    fn every_answer_has_a_traceparent_only_with_tracing_on() {
        let count = |doc: &Value| {
            doc.to_string()
                .matches("#/components/headers/traceparent")
                .count()
        };
        let requests = |doc: &Value| {
            doc.to_string()
                .matches("#/components/headers/X-Request-Id")
                .count()
        };
        let off = tailored_with(|_| {});
        assert_eq!(count(&off), 0);
        let on = tailored_with(|s| s.tracing.enabled = true);
        assert!(requests(&on) > 20);
        assert_eq!(count(&on), requests(&on), "wherever X-Request-Id is");
    }

    #[test]
    fn metrics_only_when_served_on_this_listener() {
        let doc = tailored_with(|_| {});
        assert!(doc["paths"].get("/metrics").is_none());
        let doc = tailored_with(|s| s.metrics.serve_on_api_listener = true);
        assert!(doc["paths"]["/metrics"]["get"].is_object());
    }

    #[test]
    fn schema_formats_only_with_a_schema_registry() {
        let media = |doc: &Value| -> Vec<String> {
            doc["paths"]["/topics/{topic_name}"]["post"]["requestBody"]["content"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let doc = tailored_with(|_| {});
        assert_eq!(
            media(&doc),
            [
                "application/json",
                "application/vnd.kafka.binary.v2+json",
                "application/vnd.kafka.json.v2+json",
            ]
        );
        assert_eq!(
            doc["components"]["schemas"]["ProduceRequestData"]["anyOf"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let doc = tailored_with(|s| s.schema_registry.urls = vec!["http://registry:8081".into()]);
        assert_eq!(media(&doc).len(), 6);
        assert!(!doc.to_string().contains(SCHEMA_REGISTRY_MARKER));
    }
}
