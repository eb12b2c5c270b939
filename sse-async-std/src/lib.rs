//! sse-async-std: adapter for sse-proto (filled in by a later issue).
