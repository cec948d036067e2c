//! Compiles the Velero / go-plugin `.proto` files (only with feature `velero-plugin`).
//! protox parses them in Rust, so a fresh machine needs neither `protoc` nor network.

fn main() {
    #[cfg(feature = "velero-plugin")]
    velero_protos();
}

#[cfg(feature = "velero-plugin")]
fn velero_protos() {
    let files = [
        "proto/velero/PluginLister.proto",
        "proto/velero/RestoreItemAction.proto",
        "proto/goplugin/grpc_controller.proto",
        "proto/goplugin/grpc_stdio.proto",
        "proto/goplugin/grpc_broker.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=proto/velero/Shared.proto");
    let fds = protox::compile(files, ["proto/velero", "proto/goplugin"])
        .unwrap_or_else(|e| panic!("cannot compile the Velero protos: {e:?}"));
    tonic_prost_build::configure()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("cannot generate the Velero gRPC code: {e}"));
}
