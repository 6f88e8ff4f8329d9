//! The body of `POST .../records:batch`: `{"entries": [{"id": "a", ...record}]}`, read as
//! Confluent's `ProduceBatchRequest`: every entry's id is checked first (a string of 1 to
//! 80 of `[0-9a-zA-Z_-]`), then that the ids are distinct, that there is an entry, and that
//! there are not too many, each refusal 422/42208 in Confluent's words. An entry's record
//! that cannot be read is that entry's failure; the others go on.

use std::collections::HashSet;

use serde_json::value::RawValue;

use super::super::envelope::parse_object;
use super::super::raw::Kind;
use super::super::FormatError;
use super::V3Record;

/// The longest batch entry id, as Confluent's.
const MAX_ID_LEN: usize = 80;

/// Why a batch is refused as a whole (422/42208), in Confluent's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("Request body is empty. Data is required.")]
    EmptyBody,
    #[error("Batch entry identifier is not a valid string.")]
    InvalidId,
    #[error("Batch entry IDs are not distinct.")]
    IdsNotDistinct,
    #[error("Empty batch.")]
    Empty,
    #[error("Too many entries in batch.")]
    TooMany,
}

/// Why a batch body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchRefused {
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// Not JSON (400), or not the shape of a batch (422), as the v2 envelope.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// One entry: its id, and its record or why it cannot be read.
#[derive(Debug)]
pub struct BatchEntry<'a> {
    pub id: String,
    pub record: Result<V3Record<'a>, FormatError>,
}

/// Reads a batch body of at most `max_entries` entries.
///
/// # Errors
/// [`BatchRefused`]: the batch rules (42208), or a body that is not a batch (400, 422).
pub fn parse(body: &[u8], max_entries: usize) -> Result<Vec<BatchEntry<'_>>, BatchRefused> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BatchError::EmptyBody.into());
    }
    let mut entries_raw = None;
    for (name, value) in parse_object(body, || "the request body".to_owned())? {
        match name.as_ref() {
            "entries" => entries_raw = Some(value),
            other => {
                return Err(FormatError::Envelope(format!("Unrecognized field: {other}")).into())
            }
        }
    }
    let items: Vec<&RawValue> = match entries_raw.map(|e| (Kind::of(e), e)) {
        None | Some((Kind::Null, _)) => Vec::new(),
        Some((Kind::Array, raw)) => serde_json::from_str(raw.get())
            .map_err(|e| FormatError::Malformed(format!("Malformed JSON: {e}")))?,
        Some((kind, _)) => {
            return Err(FormatError::Envelope(format!(
                "Field 'entries' must be an array, found {}.",
                kind.name()
            ))
            .into())
        }
    };
    let mut entries = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        if Kind::of(item) != Kind::Object {
            return Err(FormatError::Envelope(format!(
                "Field 'entries[{index}]' must be an object, found {}.",
                Kind::of(item).name()
            ))
            .into());
        }
        entries.push(BatchEntry {
            id: entry_id(item)?,
            record: V3Record::parse_fields(item, &["id"]),
        });
    }
    let mut seen = HashSet::with_capacity(entries.len());
    if !entries.iter().all(|e| seen.insert(e.id.as_str())) {
        return Err(BatchError::IdsNotDistinct.into());
    }
    if entries.is_empty() {
        return Err(BatchError::Empty.into());
    }
    if entries.len() > max_entries {
        return Err(BatchError::TooMany.into());
    }
    Ok(entries)
}

/// The entry's `id`: a JSON string (not a number Jackson would turn into one) of 1 to 80
/// of `[0-9a-zA-Z_-]`.
fn entry_id(entry: &RawValue) -> Result<String, BatchError> {
    let fields =
        parse_object(entry.get().as_bytes(), String::new).map_err(|_| BatchError::InvalidId)?;
    let id = fields
        .iter()
        .find(|(name, _)| name.as_ref() == "id")
        .map(|(_, value)| *value)
        .filter(|value| Kind::of(value) == Kind::Str)
        .and_then(|value| serde_json::from_str::<String>(value.get()).ok())
        .ok_or(BatchError::InvalidId)?;
    let valid = (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(id)
    } else {
        Err(BatchError::InvalidId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> BatchRefused {
        parse(body.as_bytes(), 3).unwrap_err()
    }

    #[test]
    fn entries_keep_their_ids_and_their_own_failures() {
        let entries = parse(
            br#"{"entries":[{"id":"a","value":{"type":"JSON","data":1}},{"id":"b-_9","foo":1}]}"#,
            3,
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "a");
        assert!(entries[0].record.is_ok());
        assert_eq!(entries[1].id, "b-_9");
        assert!(matches!(
            &entries[1].record,
            Err(FormatError::Record(m)) if m == "Unrecognized field: foo"
        ));
    }

    #[test]
    fn the_batch_rules_in_confluents_order_and_words() {
        let cases = [
            ("", BatchError::EmptyBody),
            ("  ", BatchError::EmptyBody),
            ("{}", BatchError::Empty),
            (r#"{"entries":null}"#, BatchError::Empty),
            (r#"{"entries":[]}"#, BatchError::Empty),
            (r#"{"entries":[{}]}"#, BatchError::InvalidId),
            (r#"{"entries":[{"id":null}]}"#, BatchError::InvalidId),
            (r#"{"entries":[{"id":1}]}"#, BatchError::InvalidId),
            (r#"{"entries":[{"id":""}]}"#, BatchError::InvalidId),
            (r#"{"entries":[{"id":"a b"}]}"#, BatchError::InvalidId),
            (r#"{"entries":[{"id":"é"}]}"#, BatchError::InvalidId),
            (
                r#"{"entries":[{"id":"a"},{"id":"a"},{"id":"b"},{"id":"c"}]}"#,
                BatchError::IdsNotDistinct,
            ),
            // Ids are checked before distinctness, distinctness before the count.
            (
                r#"{"entries":[{"id":"a"},{"id":"a"},{"id":"!"}]}"#,
                BatchError::InvalidId,
            ),
            (
                r#"{"entries":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]}"#,
                BatchError::TooMany,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(refusal(body), BatchRefused::Batch(expected), "{body}");
        }
        let long = "x".repeat(80);
        assert!(parse(
            format!(r#"{{"entries":[{{"id":"{long}"}}]}}"#).as_bytes(),
            1
        )
        .is_ok());
        assert_eq!(
            refusal(&format!(r#"{{"entries":[{{"id":"{long}y"}}]}}"#)),
            BatchRefused::Batch(BatchError::InvalidId)
        );
    }

    #[test]
    fn a_body_that_is_not_a_batch() {
        assert_eq!(
            refusal(r#"{"records":[]}"#),
            BatchRefused::Format(FormatError::Envelope("Unrecognized field: records".into()))
        );
        assert_eq!(
            refusal(r#"{"entries":{}}"#),
            BatchRefused::Format(FormatError::Envelope(
                "Field 'entries' must be an array, found an object.".into()
            ))
        );
        assert!(matches!(
            refusal(r#"{"entries":["#),
            BatchRefused::Format(FormatError::Malformed(_))
        ));
    }
}
