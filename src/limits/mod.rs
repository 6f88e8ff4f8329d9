//! Every guard rail of the service, in one place. A refusal with 413, 408, 422 (record
//! limits), 429 or 503/50302 (shedding) starts here:
//!
//! - [`body`]: the body cap (413, from `Content-Length` before reading and while a chunked
//!   body arrives), the body read timeout (408) and the in-flight byte budget (503);
//! - [`in_flight`]: the in-flight request budget (503) and the count that shutdown drains;
//! - [`records`]: records per request and bytes per record (422);
//! - [`rate`]: per-principal and global records/s and bytes/s (429), and the cleanup of
//!   idle callers' buckets.
//!
//! Outside this folder, two more 503s: a request arriving while the service drains
//! (`shutdown`), and the producer's local queue staying full for `kafka.queue_full_wait_ms`
//! (`kafka`). Header read timeouts and the connection cap are actix-web settings applied in
//! `startup`.

pub mod body;
pub mod in_flight;
pub mod rate;
pub mod records;

pub use body::{Body, BodyError, BodyLimits};
pub use in_flight::{InFlightGuard, InFlightRequests, Overloaded};
pub use rate::{RateLimited, RateLimits, Unit};
pub use records::{RecordLimitError, RecordLimits};
