//! Compiles the public contract with protox, so a fresh machine needs no system `protoc`,
//! and writes the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/sentinel/v1/sentinel.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;

    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("sentinel_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // A small encode buffer per stream: see src/grpc/codec.rs.
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .compile_fds(fds)?;
    Ok(())
}
