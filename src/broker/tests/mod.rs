//! Broker unit tests that need files or an executor.

mod consumer_offsets;
mod offsets_timing;
