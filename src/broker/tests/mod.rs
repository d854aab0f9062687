//! Broker unit tests that need files or an executor.

mod consumer_offsets;
mod controller_topics;
mod offsets_timing;
