//! Serving-platform adapters.
