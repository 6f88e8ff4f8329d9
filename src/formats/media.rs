//! Media-type negotiation of API v2: the embedded format named by `Content-Type`, and
//! whether `Accept` allows a v2 response.

use super::EmbeddedFormat;

/// Why the media types of a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("unsupported Content-Type")]
    UnsupportedMediaType,
    #[error("no acceptable response type")]
    NotAcceptable,
}

/// The embedded format named by a produce request's `Content-Type`.
///
/// `application/json` is accepted as an alias of the json format, where Confluent answers 415.
///
/// # Errors
/// [`NegotiationError::UnsupportedMediaType`] for a missing or unknown type.
pub fn request_format(content_type: Option<&str>) -> Result<EmbeddedFormat, NegotiationError> {
    let mime: mime::Mime = content_type
        .and_then(|v| v.parse().ok())
        .ok_or(NegotiationError::UnsupportedMediaType)?;
    match mime.essence_str().to_ascii_lowercase().as_str() {
        "application/vnd.kafka.json.v2+json" | "application/json" => Ok(EmbeddedFormat::Json),
        "application/vnd.kafka.binary.v2+json" => Ok(EmbeddedFormat::Binary),
        "application/vnd.kafka.avro.v2+json" => Ok(EmbeddedFormat::Avro),
        "application/vnd.kafka.jsonschema.v2+json" => Ok(EmbeddedFormat::JsonSchema),
        "application/vnd.kafka.protobuf.v2+json" => Ok(EmbeddedFormat::Protobuf),
        _ => Err(NegotiationError::UnsupportedMediaType),
    }
}

/// Checks that the `Accept` header allows a v2 response.
///
/// Absent, `*/*`, `application/*`, `application/json` and `application/vnd.kafka.v2+json`
/// are acceptable, in a list and with q-values; a range with `q=0` is a refusal.
///
/// # Errors
/// [`NegotiationError::NotAcceptable`] when no listed range allows a v2 response.
pub fn check_accept(accept: Option<&str>) -> Result<(), NegotiationError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let acceptable = accept.split(',').any(|range| {
        let Ok(mime) = range.trim().parse::<mime::Mime>() else {
            return false;
        };
        let refused = mime
            .get_param("q")
            .and_then(|q| q.as_str().parse::<f32>().ok())
            .is_some_and(|q| q <= 0.0);
        !refused
            && matches!(
                mime.essence_str().to_ascii_lowercase().as_str(),
                "*/*" | "application/*" | "application/json" | "application/vnd.kafka.v2+json"
            )
    });
    if acceptable {
        Ok(())
    } else {
        Err(NegotiationError::NotAcceptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ok = [
            ("application/vnd.kafka.json.v2+json", EmbeddedFormat::Json),
            (
                "application/vnd.kafka.json.v2+json; charset=utf-8",
                EmbeddedFormat::Json,
            ),
            ("Application/JSON", EmbeddedFormat::Json),
            (
                "application/vnd.kafka.binary.v2+json",
                EmbeddedFormat::Binary,
            ),
        ];
        for (ct, format) in ok {
            assert_eq!(request_format(Some(ct)), Ok(format), "{ct}");
        }
        for bad in [
            None,
            Some("text/plain"),
            Some("application/vnd.kafka.json.v1+json"),
            Some("application/vnd.kafka.v2+json"),
            Some("garbage"),
        ] {
            assert_eq!(
                request_format(bad),
                Err(NegotiationError::UnsupportedMediaType),
                "{bad:?}"
            );
        }
        assert_eq!(
            request_format(Some("application/vnd.kafka.avro.v2+json")),
            Ok(EmbeddedFormat::Avro)
        );
    }

    #[test]
    fn accept_ranges() {
        for ok in [
            None,
            Some(""),
            Some("*/*"),
            Some("application/*"),
            Some("application/json"),
            Some("application/vnd.kafka.v2+json"),
            Some("text/html, application/vnd.kafka.v2+json; q=0.9"),
            Some("application/vnd.kafka.v2+json;q=1.0"),
        ] {
            assert_eq!(check_accept(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            Some("text/html"),
            Some("application/xml"),
            Some("application/json; q=0"),
            Some("application/vnd.kafka.v1+json"),
        ] {
            assert_eq!(
                check_accept(bad),
                Err(NegotiationError::NotAcceptable),
                "{bad:?}"
            );
        }
    }
}
