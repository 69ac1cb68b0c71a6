//! Generates the gRPC client from the repository's one contract, `proto/sentinel/v1`, the
//! file the server compiles too (with protox: no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../proto";
    let proto = "../../proto/sentinel/v1/sentinel.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], [root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
