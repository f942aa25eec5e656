//! UnixFS over dag-pb, and CAR files for moving DAGs in and out.

pub mod car;
