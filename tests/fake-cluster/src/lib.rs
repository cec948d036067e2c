//! A fake Kubernetes API server speaking the real wire protocol, loaded from YAML.
//! Used by the integration tests and by the sandbox; see `FakeCluster`.
