//! Compatibility with the environments this service replaces: the Confluent REST Proxy
//! image's variables (layer 3) and `KAFKA_CREDS` / `SCHEMA_REGISTRY_CREDS`, Secrets Manager
//! secrets that ECS injects whole (layer 4).

use std::collections::BTreeMap;

use figment::Figment;

use super::ConfigError;

/// `KRP_AUTH__POLICY`: the policy's TOML text as ECS injects a Secrets Manager secret. Merged
/// as a plain string, beside (not through) the `KRP_` layer, which would parse the value
/// (a text starting with `[[api_keys]]` would become an array).
pub(super) fn merge_inline_policy(
    figment: Figment,
    env: &impl Fn(&str) -> Option<String>,
) -> Figment {
    match env(INLINE_POLICY_VARIABLE) {
        Some(text) => figment.merge(("auth.policy", text)),
        None => figment,
    }
}

/// The variable holding the inline policy; the `KRP_` layer leaves it alone.
pub(super) const INLINE_POLICY_VARIABLE: &str = "KRP_AUTH__POLICY";

/// Layer 3: the Confluent REST Proxy image's environment variables.
pub(super) fn merge_confluent_env(
    mut figment: Figment,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Figment, ConfigError> {
    if let Some(v) = env("KAFKA_REST_BOOTSTRAP_SERVERS") {
        figment = figment.merge(("kafka.bootstrap_servers", strip_listener_prefixes(&v)));
    }
    if let Some(v) = env("KAFKA_REST_CLIENT_SECURITY_PROTOCOL") {
        figment = figment.merge(("kafka.security_protocol", v.to_ascii_uppercase()));
    }
    if let Some(v) = env("KAFKA_REST_CLIENT_SASL_MECHANISM") {
        figment = figment.merge(("kafka.sasl_mechanism", v.to_ascii_uppercase()));
    }
    if let Some(v) = env("KAFKA_REST_CLIENT_SASL_JAAS_CONFIG") {
        let creds = parse_jaas(&v).ok_or_else(|| {
            ConfigError::invalid(
                "KAFKA_REST_CLIENT_SASL_JAAS_CONFIG",
                "expected a PlainLoginModule or ScramLoginModule line with \
                 username=\"...\" and password=\"...\"",
            )
        })?;
        figment = figment
            .merge(("kafka.sasl_username", creds.username))
            .merge(("kafka.sasl_password", creds.password));
    }
    if let Some(v) = env("KAFKA_REST_SCHEMA_REGISTRY_URL") {
        figment = figment.merge(("schema_registry.urls", v));
    }
    if let Some(source) = env("KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_CREDENTIALS_SOURCE") {
        if !source.eq_ignore_ascii_case("USER_INFO") {
            return Err(ConfigError::invalid(
                "KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_CREDENTIALS_SOURCE",
                "only USER_INFO is supported: give the credentials in \
                 KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
            ));
        }
    }
    if let Some(v) = env("KAFKA_REST_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO") {
        figment = figment.merge(("schema_registry.basic_auth_user_info", v));
    }
    // Comma-separated, as Confluent reads them (`[cors]` takes that form too); blank means
    // the default there, so it does here.
    for (variable, key) in [
        (
            "KAFKA_REST_ACCESS_CONTROL_ALLOW_ORIGIN",
            "cors.allowed_origins",
        ),
        (
            "KAFKA_REST_ACCESS_CONTROL_ALLOW_METHODS",
            "cors.allowed_methods",
        ),
        (
            "KAFKA_REST_ACCESS_CONTROL_ALLOW_HEADERS",
            "cors.allowed_headers",
        ),
    ] {
        if let Some(v) = env(variable).filter(|v| !v.trim().is_empty()) {
            figment = figment.merge((key, v));
        }
    }
    for (variable, setting) in [
        (
            "KAFKA_REST_STREAMING_CONNECTION_MAX_DURATION_MS",
            "streaming.max_duration_ms",
        ),
        (
            "KAFKA_REST_STREAMING_CONNECTION_MAX_DURATION_GRACE_PERIOD_MS",
            "streaming.max_duration_grace_ms",
        ),
        (
            "KAFKA_REST_API_V3_PRODUCE_BATCH_MAXIMUM_ENTRIES",
            "batch.max_entries",
        ),
    ] {
        if let Some(v) = env(variable) {
            let number: u64 = v
                .trim()
                .parse()
                .map_err(|_| ConfigError::invalid(variable, "must be a non-negative integer"))?;
            figment = figment.merge((setting, number));
        }
    }
    Ok(figment)
}

/// Confluent's image accepts `SASL_SSL://host:9096` style entries; librdkafka wants `host:port`.
fn strip_listener_prefixes(servers: &str) -> String {
    servers
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.split_once("://").map_or(s, |(_, rest)| rest)
        })
        .collect::<Vec<_>>()
        .join(",")
}

struct JaasCredentials {
    username: String,
    password: String,
}

/// Extracts username and password from a Kafka JAAS line such as
/// `org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";`.
fn parse_jaas(line: &str) -> Option<JaasCredentials> {
    let module = line.split_whitespace().next()?;
    if !(module.ends_with("PlainLoginModule") || module.ends_with("ScramLoginModule")) {
        return None;
    }
    Some(JaasCredentials {
        username: jaas_option(line, "username")?,
        password: jaas_option(line, "password")?,
    })
}

/// The value of `name="value"` in a JAAS line, honouring `\"` and `\\` escapes.
fn jaas_option(line: &str, name: &str) -> Option<String> {
    let mut rest = line;
    loop {
        let at = rest.find(name)?;
        let preceded_ok = at == 0
            || rest[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace);
        let after = rest[at + name.len()..].trim_start();
        if preceded_ok {
            if let Some(quoted) = after.strip_prefix('=').map(str::trim_start) {
                let quoted = quoted.strip_prefix('"')?;
                let mut value = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?),
                        '"' => return Some(value),
                        c => value.push(c),
                    }
                }
                return None;
            }
        }
        rest = &rest[at + name.len()..];
    }
}

/// Layer 4: `KAFKA_CREDS` and `SCHEMA_REGISTRY_CREDS`, Secrets Manager secrets injected
/// whole by ECS.
pub(super) fn merge_injected_secrets(
    mut figment: Figment,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Figment, ConfigError> {
    for (variable, fields) in [
        (
            "KAFKA_CREDS",
            &[
                ("BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
                ("SASL_USERNAME", "kafka.sasl_username"),
                ("SASL_PASSWORD", "kafka.sasl_password"),
            ][..],
        ),
        (
            "SCHEMA_REGISTRY_CREDS",
            &[
                ("SCHEMA_REGISTRY_URL", "schema_registry.urls"),
                (
                    "BASIC_AUTH_USER_INFO",
                    "schema_registry.basic_auth_user_info",
                ),
            ][..],
        ),
    ] {
        if let Some(raw) = env(variable) {
            figment = merge_secret(figment, variable, &raw, fields)?;
        }
    }
    Ok(figment)
}

/// Merges the `fields` (secret key, setting) of one JSON secret.
fn merge_secret(
    mut figment: Figment,
    variable: &str,
    raw: &str,
    fields: &[(&str, &str)],
) -> Result<Figment, ConfigError> {
    // The error deliberately omits serde's detail: it could quote part of the secret.
    let creds: BTreeMap<String, serde_json::Value> = serde_json::from_str(raw)
        .map_err(|_| ConfigError::invalid(variable, "not a JSON object of strings"))?;
    for (secret_key, setting) in fields {
        match creds.get(*secret_key) {
            None => {}
            Some(serde_json::Value::String(v)) => {
                let v = if *secret_key == "BOOTSTRAP_SERVERS" {
                    strip_listener_prefixes(v)
                } else {
                    v.clone()
                };
                figment = figment.merge((*setting, v));
            }
            Some(_) => {
                return Err(ConfigError::invalid(
                    &format!("{variable}.{secret_key}"),
                    "must be a string",
                ))
            }
        }
    }
    Ok(figment)
}
