//! UnixFS over dag-pb.
