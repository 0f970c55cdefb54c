//! Compiles the control API schema with `protox` (a protobuf compiler written in Rust, so no system `protoc` is
//! needed) and generates the prost messages and the tonic client and server.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=ringfwd/v1/ringfwd.proto");
    let fds = protox::compile(["ringfwd/v1/ringfwd.proto"], ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ringfwd_v1_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
