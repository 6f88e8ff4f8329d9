//! The steps every metadata read shares, v2 (`metadata`) and v3 (`resources_v3`): the
//! rate-limit charge, the policy check on a topic named in the path, and which topics of a
//! listing a caller sees. One copy, so the two APIs cannot drift apart on who sees what.

use actix_web::HttpRequest;

use super::authenticate::{authorize, may_describe, principal, AuthState};
use super::observe::client_ip;
use super::{parse_topic, AppState};
use crate::auth::Operation;
use crate::domain::TopicName;
use crate::error::ApiError;
use crate::kafka::{ClusterMetadata, TopicMetadata};
use crate::produce::Caller;

/// Charges the call to the caller's rate limit as one record (429 past it): metadata
/// reads cost the cluster too, and are not free to call in a loop.
pub(super) fn charge(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let principal = principal(req);
    let caller = Caller {
        principal: principal.as_ref(),
        client_ip: client_ip(req),
    };
    Ok(state.produce.charge_lookup(caller)?)
}

/// The topic named in the path, when the caller may describe it. The policy is checked
/// before the topic is looked up: a caller may not learn whether a topic it cannot
/// describe exists.
pub(super) fn describable_topic(
    req: &HttpRequest,
    auth: &AuthState,
    raw_topic: &str,
) -> Result<TopicName, ApiError> {
    let topic = parse_topic(raw_topic)?;
    authorize(req, auth, Operation::Describe, topic.as_str())?;
    Ok(topic)
}

/// Kafka's internal topics (`__consumer_offsets`, `__transaction_state`…) are not listed.
pub(super) fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// The topics of a listing that the caller sees: not internal, describable, by name.
pub(super) fn listed_topics<'a>(
    req: &HttpRequest,
    auth: &AuthState,
    cluster: &'a ClusterMetadata,
) -> Vec<&'a TopicMetadata> {
    let mut topics: Vec<&TopicMetadata> = cluster
        .topics
        .iter()
        .filter(|t| !is_internal(&t.name) && may_describe(req, auth, &t.name))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics() {
        assert!(is_internal("__consumer_offsets"));
        assert!(!is_internal("_schemas"));
        assert!(!is_internal("orders"));
    }
}
