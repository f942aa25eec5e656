//! Conformance suite run against every store implementation.
