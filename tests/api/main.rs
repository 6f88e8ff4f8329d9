//! The integration tests: one binary, one module per area, the harness in [`helpers`]. They
//! run the real app on port 0 (or the real binary) against the brokers that
//! `scripts/test.sh` starts, each test with a random topic of its own.

mod helpers;

mod auth;
mod chaos;
mod cli;
mod cors;
mod deploy;
mod faults;
mod idempotency;
mod kafka;
mod limits;
mod metadata_v2;
mod observability;
mod openapi;
mod produce_schema;
mod produce_v2;
mod produce_v3;
mod registry_double;
mod resilience;
mod resources_v3;
mod scram;
mod tls;
mod traces;
