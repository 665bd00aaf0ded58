//! The DLQ re-driver (work in progress).
