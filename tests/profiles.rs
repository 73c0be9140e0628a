//! Profiles against the real engine and `serve` (being written).
