//! Generates the Rust types of the RocketMQ 5.x gRPC API (src/grpc) from
//! proto/ at build time. protox compiles the .proto files in pure Rust (it
//! ships google/protobuf/*.proto itself), so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const FILES: [&str; 2] = [
        "proto/apache/rocketmq/v2/definition.proto",
        "proto/apache/rocketmq/v2/service.proto",
    ];
    for f in FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(FILES, ["proto"])?;
    prost_build::Config::new()
        // `bytes` fields (message bodies) as `bytes::Bytes`: decoding from
        // the received buffer slices it instead of copying each body.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
