//! Test harness for the end-to-end tests: locating the built binaries, starting the
//! fake cluster, and connecting to the throwaway PostgreSQL started by `scripts/test-postgres`.
