use clap::Parser;

/// Cuts a video into keyframe-aligned, stream-copied segments and audio tracks.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
