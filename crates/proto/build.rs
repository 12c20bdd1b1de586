//! Compiles `proto/*.proto` with protox (pure Rust), so building Strom needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let fds = protox::compile(&files, [dir])?;
    // Replicated records travel as `Bytes`, so a fetched batch reaches the log without a copy.
    tonic_prost_build::configure().bytes(".strom.replication.v1").compile_fds(fds)?;
    Ok(())
}
