//! A Confluent Schema Registry double, served on a free port inside the test, and the way to
//! read what the proxy wrote with Confluent's own Python deserializers ([`Registry::decode`]).
//!
//! No Schema Registry can be installed here, so the endpoints that the proxy and the
//! deserializers call answer as Confluent Schema Registry 8.3 does (read from its sources:
//! `SchemasResource`, `SubjectsResource`, `SubjectVersionsResource`, `AssociationsResource`,
//! `Errors`, and the storage layer behind them): the same statuses, error codes, messages and JSON shapes.
//! Since 8.0 the registry names `schemaType` even for AVRO, adds `guid`, `ts` and `deleted`
//! to the schemas it returns, and answers a registration with the whole schema, not just
//! `{"id": N}` (7.x): a client should read only the fields it needs.
//!
//! Like the real one, it stores and serves its own rendering of a schema, not the text it
//! was given: Avro as apache-avro writes the parsed schema back (compact JSON, as Java's
//! `Schema.toString()`), JSON Schema as compact JSON (with sorted keys, where Java keeps
//! their order); Protobuf as registered, where the real one prints the parsed file again.
//! The real one keys its global ids by the MD5 of that rendering: registering a schema whose
//! rendering (for Protobuf, whose compiled file) is registered already returns that id, under
//! any subject. Under one subject, a schema is also found when it is equivalent to a version
//! there: Avro by the parsing canonical form, JSON Schema by the parsed value, Protobuf by the
//! compiled FileDescriptorProto.
//!
//! Confluent's Python deserializers (confluent-kafka 2.16) also ask which subject a topic is
//! associated with, and are told none, as no client here creates associations.
//!
//! Left out: compatibility checks (as if the compatibility level were NONE), schema
//! references, deleting, contexts and modes, and the other endpoints (404). The details of
//! an invalid schema's message are apache-avro's, jsonschema's or protox's, not Java's.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::MessageDigest;
use prost::Message;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde::Deserialize;
use serde_json::{json, Value};

/// The Content-Type of every answer but 401.
pub const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The media types a request body may be declared as (besides none at all).
const REQUEST_MEDIA_TYPES: [&str; 4] = [
    MEDIA_TYPE,
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// The name a Protobuf schema's file has in its FileDescriptorProto, as the real one's.
const PROTO_FILE: &str = "default";

/// The kinds of schema the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// The `schemaType` of the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// The schema type a request names; none means AVRO.
    fn from_request(name: Option<&str>) -> Result<SchemaType, String> {
        match name {
            None | Some("AVRO") => Ok(SchemaType::Avro),
            Some("JSON") => Ok(SchemaType::Json),
            Some("PROTOBUF") => Ok(SchemaType::Protobuf),
            Some(other) => Err(format!("Invalid schema type {other}")),
        }
    }

    /// The embedded format's name, as the proxy and the decode script call it.
    fn format(self) -> &'static str {
        match self {
            SchemaType::Avro => "avro",
            SchemaType::Json => "jsonschema",
            SchemaType::Protobuf => "protobuf",
        }
    }
}

/// A schema, parsed as the registry keeps it.
#[derive(Debug, Clone)]
struct Parsed {
    schema_type: SchemaType,
    /// What is stored and served (see the module doc).
    text: String,
    /// What makes two registrations one global id: the real one keys schemas by the MD5 of
    /// its rendering. For Protobuf, whose rendering this double cannot reproduce, the
    /// compiled file stands in.
    identity: Vec<u8>,
    /// What makes a schema found under a subject where a different rendering is registered.
    equivalence: Vec<u8>,
    /// Protobuf only: the compiled FileDescriptorProto, base64, as `format=serialized` has it.
    serialized: Option<String>,
}

impl Parsed {
    /// # Errors
    /// The parser's message when `text` is not a schema of `schema_type`.
    fn new(schema_type: SchemaType, text: &str) -> Result<Parsed, String> {
        match schema_type {
            SchemaType::Avro => {
                let schema = apache_avro::Schema::parse_str(text).map_err(|e| e.to_string())?;
                let rendering = serde_json::to_string(&schema).map_err(|e| e.to_string())?;
                Ok(Parsed {
                    schema_type,
                    identity: rendering.clone().into_bytes(),
                    equivalence: schema.canonical_form().into_bytes(),
                    text: rendering,
                    serialized: None,
                })
            }
            SchemaType::Json => {
                let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                jsonschema::validator_for(&value).map_err(|e| e.to_string())?;
                let rendering = value.to_string();
                Ok(Parsed {
                    schema_type,
                    identity: rendering.clone().into_bytes(),
                    equivalence: rendering.clone().into_bytes(),
                    text: rendering,
                    serialized: None,
                })
            }
            SchemaType::Protobuf => {
                let file = compile_proto(text)?;
                Ok(Parsed {
                    schema_type,
                    serialized: Some(STANDARD.encode(&file)),
                    identity: file.clone(),
                    equivalence: file,
                    text: text.to_owned(),
                })
            }
        }
    }

    fn same(&self, other: &Parsed) -> bool {
        self.schema_type == other.schema_type && self.identity == other.identity
    }

    fn equivalent(&self, other: &Parsed) -> bool {
        self.schema_type == other.schema_type && self.equivalence == other.equivalence
    }

    fn guid(&self) -> String {
        guid(&self.text)
    }
}

/// A schema's GUID: the MD5 of its text, written as a UUID.
fn guid(text: &str) -> String {
    let md5 = openssl::hash::hash(MessageDigest::md5(), text.as_bytes()).unwrap();
    uuid::Uuid::from_slice(&md5).unwrap().to_string()
}

/// Serves the registered `.proto` text as [`PROTO_FILE`]; imports are left to the next
/// resolver (the well-known types).
struct ProtoSource(String);

impl FileResolver for ProtoSource {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == PROTO_FILE {
            File::from_source(name, &self.0)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// The encoded FileDescriptorProto of a `.proto` text, compiled by protox.
fn compile_proto(text: &str) -> Result<Vec<u8>, String> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(ProtoSource(text.to_owned()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.open_file(PROTO_FILE).map_err(|e| e.to_string())?;
    // The set has the file without its imports and without source positions, which would
    // make a comment or a blank line another schema.
    let set = compiler.file_descriptor_set();
    Ok(set.file[0].encode_to_vec())
}

/// A schema with its global id (its index + 1).
struct Registered {
    parsed: Parsed,
    /// The subjects and versions it is registered as, in the order it got them.
    homes: Vec<(String, usize)>,
}

/// One version of a subject (its index + 1).
struct SubjectVersion {
    id: usize,
    /// When it was registered, in milliseconds since the epoch.
    ts_ms: u128,
}

/// How a schema was found under a subject.
enum Found {
    /// The same rendering.
    Same { version: usize, id: usize },
    /// An equivalent schema with another rendering.
    Equivalent { version: usize, id: usize },
}

#[derive(Default)]
struct Store {
    schemas: Vec<Registered>,
    subjects: HashMap<String, Vec<SubjectVersion>>,
}

impl Store {
    fn schema(&self, id: usize) -> Option<&Registered> {
        self.schemas.get(id.checked_sub(1)?)
    }

    fn ts_ms(&self, subject: &str, version: usize) -> u128 {
        self.subjects[subject][version - 1].ts_ms
    }

    /// The version of `subject` that `parsed` is, the latest first, as the real one looks.
    fn find(&self, subject: &str, parsed: &Parsed) -> Option<Found> {
        let versions = self.subjects.get(subject)?;
        let latest_first = || versions.iter().enumerate().rev();
        let schema = |v: &SubjectVersion| &self.schemas[v.id - 1].parsed;
        latest_first()
            .find(|(_, v)| schema(v).same(parsed))
            .map(|(index, v)| Found::Same {
                version: index + 1,
                id: v.id,
            })
            .or_else(|| {
                latest_first()
                    .find(|(_, v)| schema(v).equivalent(parsed))
                    .map(|(index, v)| Found::Equivalent {
                        version: index + 1,
                        id: v.id,
                    })
            })
    }

    /// Registers `parsed` under `subject` unless it is there already; returns its id and
    /// version there.
    fn register(&mut self, subject: &str, parsed: Parsed) -> (usize, usize) {
        match self.find(subject, &parsed) {
            Some(Found::Same { version, id } | Found::Equivalent { version, id }) => {
                return (id, version)
            }
            None => {}
        }
        let id = match self.schemas.iter().position(|s| s.parsed.same(&parsed)) {
            Some(index) => index + 1,
            None => {
                self.schemas.push(Registered {
                    parsed,
                    homes: Vec::new(),
                });
                self.schemas.len()
            }
        };
        let versions = self.subjects.entry(subject.to_owned()).or_default();
        versions.push(SubjectVersion {
            id,
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        });
        let version = versions.len();
        self.schemas[id - 1]
            .homes
            .push((subject.to_owned(), version));
        (id, version)
    }
}

/// How the registry answers, as the test switches it.
#[derive(Debug, Clone)]
enum Mode {
    Serve,
    Fail {
        status: StatusCode,
        error_code: i32,
        message: String,
    },
    Hang,
}

/// The endpoints, as [`Calls`] counts them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    ById,
    Lookup,
    Register,
    Version,
    Associations,
    Other,
}

#[derive(Default)]
struct Counters {
    total: AtomicUsize,
    by_id: AtomicUsize,
    lookup: AtomicUsize,
    register: AtomicUsize,
    version: AtomicUsize,
    associations: AtomicUsize,
}

/// How many HTTP requests the registry received, answered or not, by endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// Every request, to any path.
    pub total: usize,
    /// `GET /schemas/ids/{id}`.
    pub by_id: usize,
    /// `POST /subjects/{subject}`: is this schema registered under the subject?
    pub lookup: usize,
    /// `POST /subjects/{subject}/versions`.
    pub register: usize,
    /// `GET /subjects/{subject}/versions/{version}`.
    pub version: usize,
    /// `GET /associations/resources/{namespace}/{name}`: which subject a topic uses.
    pub associations: usize,
}

struct State {
    store: Mutex<Store>,
    mode: Mutex<Mode>,
    /// The base64 `user:password` that every request's `Authorization: Basic` must carry,
    /// when basic auth is on.
    credentials: Option<String>,
    counters: Counters,
}

impl State {
    /// Counts the request, then answers it if the test's switches or the registry's checks
    /// (basic auth, then the body's media type) say so; `None` lets the endpoint answer.
    async fn admit(&self, kind: Kind, req: &HttpRequest) -> Option<HttpResponse> {
        let c = &self.counters;
        let endpoint = match kind {
            Kind::ById => Some(&c.by_id),
            Kind::Lookup => Some(&c.lookup),
            Kind::Register => Some(&c.register),
            Kind::Version => Some(&c.version),
            Kind::Associations => Some(&c.associations),
            Kind::Other => None,
        };
        for counter in std::iter::once(&c.total).chain(endpoint) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        let mode = self.mode.lock().unwrap().clone();
        match mode {
            Mode::Serve => {}
            Mode::Fail {
                status,
                error_code,
                message,
            } => return Some(error(status, error_code, message)),
            Mode::Hang => std::future::pending::<()>().await,
        }
        if let Some(expected) = &self.credentials {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()?.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
                .map(|(_, credentials)| credentials.trim());
            if given != Some(expected.as_str()) {
                // Jetty refuses it before the REST layer, with its own JSON error page.
                return Some(
                    HttpResponse::Unauthorized()
                        .content_type("application/json")
                        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"SchemaRegistry\""))
                        .body(json!({"error_code": 401, "message": "Unauthorized"}).to_string()),
                );
            }
        }
        if req.method() == Method::POST {
            let declared = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                });
            if declared.is_some_and(|m| !REQUEST_MEDIA_TYPES.contains(&m.as_str())) {
                return Some(error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    415,
                    "HTTP 415 Unsupported Media Type",
                ));
            }
        }
        None
    }
}

fn answer(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(MEDIA_TYPE)
        .body(body.to_string())
}

/// The registry's error body: `{"error_code": N, "message": "..."}`.
fn error(status: StatusCode, error_code: i32, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(MEDIA_TYPE)
        .body(json!({"error_code": error_code, "message": message.into()}).to_string())
}

fn subject_not_found(subject: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        40401,
        format!("Subject '{subject}' not found."),
    )
}

/// A request the registry refuses: its status, error code and message.
struct Refusal(StatusCode, i32, String);

impl Refusal {
    fn invalid_schema(message: String) -> Refusal {
        Refusal(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }

    fn answer(self) -> HttpResponse {
        error(self.0, self.1, self.2)
    }
}

/// The body of a look-up or a registration (`RegisterSchemaRequest`; other fields ignored).
#[derive(Deserialize)]
struct SchemaRequest {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

impl SchemaRequest {
    /// The request's schema, parsed; `None` when it has none.
    ///
    /// # Errors
    /// The registry's answer to a body that is not such a request (400) or to a schema that
    /// does not parse (42201).
    fn parse(body: &[u8], subject: &str) -> Result<Option<Parsed>, Refusal> {
        // As rest-utils maps Jackson's parse and mapping errors (in serde's words here).
        let request: SchemaRequest = serde_json::from_slice(body)
            .map_err(|e| Refusal(StatusCode::BAD_REQUEST, 400, e.to_string()))?;
        let schema_type = SchemaType::from_request(request.schema_type.as_deref())
            .map_err(Refusal::invalid_schema)?;
        if !request.references.is_empty() {
            return Err(Refusal::invalid_schema(
                "the Schema Registry double does not support references".into(),
            ));
        }
        let Some(text) = request.schema.filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        Parsed::new(schema_type, &text)
            .map(Some)
            .map_err(|details| {
                Refusal::invalid_schema(invalid_schema_message(
                    schema_type,
                    subject,
                    &text,
                    &details,
                ))
            })
    }
}

/// What the real one says of a schema its parser refuses: the registry wraps the schema
/// provider's message, which for Avro prints the request's schema as the `Schema` entity it
/// parses (its hash key: no version, no id).
fn invalid_schema_message(
    schema_type: SchemaType,
    subject: &str,
    text: &str,
    details: &str,
) -> String {
    let kind = schema_type.as_str();
    let provider = match schema_type {
        SchemaType::Avro => {
            let guid = guid(text);
            format!(
                "Invalid schema {{subject={subject},version=null,id=null,guid={guid},schemaType={kind},\
                 references=[],metadata=null,ruleSet=null,schema={text},schemaTags=null,\
                 ts=null,deleted=null}} with refs [] of type {kind}, details: {details}"
            )
        }
        SchemaType::Json | SchemaType::Protobuf => {
            format!("Invalid schema of type {kind}, details: {details}")
        }
    };
    format!("Invalid schema of type {kind}, details: {provider}")
}

/// A subject version as the registry returns it (its `Schema` entity).
fn entity(store: &Store, subject: &str, version: usize, id: usize) -> Value {
    let schema = &store.schemas[id - 1].parsed;
    json!({"subject": subject, "version": version, "id": id, "guid": schema.guid(),
        "schemaType": schema.schema_type.as_str(), "schema": schema.text,
        "ts": store.ts_ms(subject, version), "deleted": false})
}

/// `GET /schemas/ids/{id}`: with `subject`, the subject and version the id has there (or its
/// first home, when it has none there); with `format=serialized`, a Protobuf schema as its
/// FileDescriptorProto (other formats leave the schema as it is).
async fn schema_by_id(
    state: web::Data<State>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(refusal) = state.admit(Kind::ById, &req).await {
        return refusal;
    }
    // JAX-RS: a path parameter that does not convert to the method's Integer matches nothing.
    let Ok(id) = id.parse::<i32>() else {
        return not_found();
    };
    let store = state.store.lock().unwrap();
    let Some(schema) = usize::try_from(id).ok().and_then(|id| store.schema(id)) else {
        return error(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {id} not found"),
        );
    };
    let subject = query.get("subject");
    let (home, version) = subject
        .and_then(|s| schema.homes.iter().find(|(home, _)| home == s))
        .unwrap_or(&schema.homes[0]);
    let text = match (
        query.get("format").map(String::as_str),
        &schema.parsed.serialized,
    ) {
        (Some("serialized"), Some(serialized)) => serialized,
        _ => &schema.parsed.text,
    };
    let mut body = json!({"guid": schema.parsed.guid(),
        "schemaType": schema.parsed.schema_type.as_str(), "schema": text,
        "ts": store.ts_ms(home, *version), "deleted": false});
    if subject.is_some() {
        body["subject"] = json!(home);
        body["version"] = json!(version);
    }
    answer(body)
}

/// `POST /subjects/{subject}`: the version of the subject that the schema in the body is.
async fn look_up_schema_under_subject(
    state: web::Data<State>,
    req: HttpRequest,
    subject: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(refusal) = state.admit(Kind::Lookup, &req).await {
        return refusal;
    }
    let parsed = match SchemaRequest::parse(&body, &subject) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.answer(),
    };
    let store = state.store.lock().unwrap();
    match (
        parsed.as_ref().and_then(|p| store.find(&subject, p)),
        parsed,
    ) {
        // The real one answers with the schema it was sent, in its own rendering.
        (Some(Found::Same { version, id }), Some(parsed)) => answer(
            json!({"subject": subject.as_str(), "version": version, "id": id,
                "guid": parsed.guid(), "schemaType": parsed.schema_type.as_str(),
                "schema": parsed.text}),
        ),
        (Some(Found::Equivalent { version, id }), _) => {
            answer(entity(&store, &subject, version, id))
        }
        _ if store.subjects.contains_key(subject.as_str()) => {
            error(StatusCode::NOT_FOUND, 40403, "Schema not found")
        }
        _ => subject_not_found(&subject),
    }
}

/// `POST /subjects/{subject}/versions`: registers the schema in the body under the subject.
async fn register_schema(
    state: web::Data<State>,
    req: HttpRequest,
    subject: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(refusal) = state.admit(Kind::Register, &req).await {
        return refusal;
    }
    let parsed = match SchemaRequest::parse(&body, &subject) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Refusal::invalid_schema("Empty schema".into()).answer(),
        Err(refusal) => return refusal.answer(),
    };
    let (id, version) = state
        .store
        .lock()
        .unwrap()
        .register(&subject, parsed.clone());
    answer(json!({"id": id, "version": version, "guid": parsed.guid(),
        "schemaType": parsed.schema_type.as_str(), "schema": parsed.text}))
}

/// `GET /subjects/{subject}/versions/{version}`, the version a number or `latest`.
async fn schema_by_version(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Some(refusal) = state.admit(Kind::Version, &req).await {
        return refusal;
    }
    let (subject, version) = path.into_inner();
    let wanted = if version.trim().eq_ignore_ascii_case("latest") {
        None
    } else {
        match version.trim().parse::<i32>() {
            Ok(-1) => None,
            Ok(n) if n > 0 => Some(n),
            parsed => {
                let shown = parsed.map_or(version, |n| n.to_string());
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    42202,
                    format!(
                        "The specified version '{shown}' is not a valid version id. Allowed \
                         values are between [1, 2^31-1] and the string \"latest\""
                    ),
                );
            }
        }
    };
    let store = state.store.lock().unwrap();
    let Some(versions) = store.subjects.get(&subject) else {
        return subject_not_found(&subject);
    };
    let number = wanted.map_or(versions.len(), |n| n as usize);
    match number.checked_sub(1).and_then(|index| versions.get(index)) {
        Some(v) => answer(entity(&store, &subject, number, v.id)),
        None => error(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {number} not found."),
        ),
    }
}

/// `GET /associations/resources/{namespace}/{name}`: the subjects associated with a resource
/// such as a topic. Confluent's deserializers ask it first (their default subject name
/// strategy) and use the topic's subject when there is none, as there never is here: no
/// client of the double creates associations.
async fn associations_by_resource_name(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    if let Some(refusal) = state.admit(Kind::Associations, &req).await {
        return refusal;
    }
    answer(json!([]))
}

fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
}

/// Any endpoint the double does not implement.
async fn other(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    state
        .admit(Kind::Other, &req)
        .await
        .unwrap_or_else(not_found)
}

/// An item for [`Registry::decode`]: bytes as the proxy wrote them to a topic.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub schema_type: SchemaType,
    pub topic: String,
    pub is_key: bool,
    pub bytes: Vec<u8>,
}

impl Encoded {
    /// A record's value.
    pub fn value(schema_type: SchemaType, topic: &str, bytes: Vec<u8>) -> Encoded {
        Encoded {
            schema_type,
            topic: topic.to_owned(),
            is_key: false,
            bytes,
        }
    }

    /// A record's key.
    pub fn key(schema_type: SchemaType, topic: &str, bytes: Vec<u8>) -> Encoded {
        Encoded {
            is_key: true,
            ..Encoded::value(schema_type, topic, bytes)
        }
    }
}

/// The Schema Registry double, serving on a free loopback port until the test ends.
pub struct Registry {
    url: String,
    /// `user:password`, when basic auth is on.
    user_info: Option<String>,
    state: web::Data<State>,
}

impl Registry {
    /// Starts an empty registry on the test's runtime.
    pub fn start() -> Registry {
        Registry::serve(None)
    }

    /// Starts an empty registry that answers 401 to any request without these credentials.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Registry::serve(Some(format!("{user}:{password}")))
    }

    fn serve(user_info: Option<String>) -> Registry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = web::Data::from(Arc::new(State {
            store: Mutex::default(),
            mode: Mutex::new(Mode::Serve),
            credentials: user_info.as_ref().map(|u| STANDARD.encode(u)),
            counters: Counters::default(),
        }));
        let shared = state.clone();
        let server = HttpServer::new(move || {
            // A known path with a method the double does not serve is no endpoint either.
            let endpoint = |path: &str, route: actix_web::Route| {
                web::resource(path)
                    .route(route)
                    .default_service(web::to(other))
            };
            App::new()
                .app_data(shared.clone())
                .service(endpoint("/schemas/ids/{id}", web::get().to(schema_by_id)))
                .service(endpoint(
                    "/subjects/{subject}",
                    web::post().to(look_up_schema_under_subject),
                ))
                .service(endpoint(
                    "/subjects/{subject}/versions",
                    web::post().to(register_schema),
                ))
                .service(endpoint(
                    "/subjects/{subject}/versions/{version}",
                    web::get().to(schema_by_version),
                ))
                .service(endpoint(
                    "/associations/resources/{namespace}/{name}",
                    web::get().to(associations_by_resource_name),
                ))
                .default_service(web::to(other))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Registry {
            url,
            user_info,
            state,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers `text` under `subject` as a client would, but directly (not counted), and
    /// returns its id.
    pub fn register(&self, subject: &str, schema_type: SchemaType, text: &str) -> i32 {
        let parsed = Parsed::new(schema_type, text)
            .unwrap_or_else(|e| panic!("not a {} schema: {e}", schema_type.as_str()));
        let (id, _) = self.state.store.lock().unwrap().register(subject, parsed);
        i32::try_from(id).unwrap()
    }

    /// From now on every request is answered with `status` and this error body.
    pub fn fail_with(&self, status: u16, error_code: i32, message: &str) {
        *self.state.mode.lock().unwrap() = Mode::Fail {
            status: StatusCode::from_u16(status).unwrap(),
            error_code,
            message: message.to_owned(),
        };
    }

    /// From now on requests are accepted and never answered.
    pub fn hang(&self) {
        *self.state.mode.lock().unwrap() = Mode::Hang;
    }

    /// Back to answering as the registry does (requests already hanging stay so).
    pub fn restore(&self) {
        *self.state.mode.lock().unwrap() = Mode::Serve;
    }

    /// The HTTP requests received so far.
    pub fn calls(&self) -> Calls {
        let c = &self.state.counters;
        Calls {
            total: c.total.load(Ordering::SeqCst),
            by_id: c.by_id.load(Ordering::SeqCst),
            lookup: c.lookup.load(Ordering::SeqCst),
            register: c.register.load(Ordering::SeqCst),
            version: c.version.load(Ordering::SeqCst),
            associations: c.associations.load(Ordering::SeqCst),
        }
    }

    /// Decodes `items` with Confluent's Python deserializers pointed at this registry (one
    /// Python process for all of them; see tests/api/confluent_decode.py for how values are
    /// printed): one JSON value per item, or `{"error": "..."}` for an item that fails.
    pub async fn decode(&self, items: &[Encoded]) -> Vec<Value> {
        let input: String = items
            .iter()
            .map(|item| {
                let hex: String = item.bytes.iter().map(|b| format!("{b:02x}")).collect();
                let line = json!({"format": item.schema_type.format(), "topic": item.topic,
                    "is_key": item.is_key, "hex": hex});
                format!("{line}\n")
            })
            .collect();
        let mut command = Command::new(python());
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/api/confluent_decode.py"
            ))
            .arg(&self.url)
            .args(&self.user_info)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The deserializers call this registry, which runs on this runtime: wait elsewhere.
        let output = actix_web::rt::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("python starts");
            let mut stdin = child.stdin.take().unwrap();
            // Written from another thread, so that a full stdout pipe cannot stall both sides.
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
            let output = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            output
        })
        .await
        .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "confluent_decode.py failed ({}): {}\n{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let values: Vec<Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(values.len(), items.len(), "{stdout}");
        values
    }
}

/// The venv's python that scripts/install-test-venv.sh made: `IT_PYTHON`, as scripts/test.sh
/// exports it, or where that script puts it by default.
pub fn python() -> PathBuf {
    let path = std::env::var_os("IT_PYTHON").map_or_else(
        || {
            let cache = std::env::var_os("IT_CACHE_DIR").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/kafka-rest-proxy"),
                PathBuf::from,
            );
            cache.join("test-venv/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-test-venv.sh",
        path.display()
    );
    path
}
