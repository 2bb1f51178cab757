//! Frame encoding.
