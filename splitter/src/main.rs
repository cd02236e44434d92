use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use splitter::error::{self, Kind};
use splitter::join::{self, JoinOptions};
use splitter::logging::{self, LogFormat};
use splitter::s3;
use splitter::split::{self, SplitOptions};
use splitter::verify::{self, VerifyOptions};

/// Cuts a video into keyframe-aligned, stream-copied segments and audio tracks.
///
/// Each segment decodes standalone to exactly its frames (after dropping `lead_in_frames`),
/// so a fleet of workers can process them in parallel. `manifest.json` is written last: its
/// presence means the output is complete.
///
/// Exit codes: 0 ok, 1 other failure, 2 usage, 3 input not found or unreadable, 4 not a
/// video (or not splittable), 5 output not writable, 6 ffmpeg/ffprobe missing or too old,
/// 7 verify found problems, 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "splitter", version, max_term_width = 100)]
struct Cli {
    /// Log format on stderr: text on a terminal and JSON lines otherwise by default.
    #[arg(long, env = "SPLITTER_LOG_FORMAT", value_enum, default_value = "auto", global = true)]
    log_format: LogFormat,
    /// ffmpeg to run (default: `ffmpeg` on PATH); 5.1 or newer.
    #[arg(long, env = "SPLITTER_FFMPEG", global = true, value_name = "PATH")]
    ffmpeg: Option<PathBuf>,
    /// ffprobe to run (default: `ffprobe` on PATH); 5.1 or newer.
    #[arg(long, env = "SPLITTER_FFPROBE", global = true, value_name = "PATH")]
    ffprobe: Option<PathBuf>,
    /// Temporary space for downloads and S3-bound outputs (default: $TMPDIR or /tmp).
    #[arg(long, env = "SPLITTER_WORK_DIR", global = true, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Split INPUT (a file or s3://bucket/key) into OUTPUT (a directory or s3://bucket/prefix).
    Split(SplitArgs),
    /// Re-check OUTPUT against its manifest: files, sizes, sha256, keyframes, frame counts.
    Verify(VerifyArgs),
    /// Put processed segments and the split's audio back together (stream copy) into
    /// OUTPUT_FILE, every frame at the source's timestamp.
    Join(JoinArgs),
}

#[derive(Debug, Args)]
struct SplitArgs {
    /// Video to split: a local path or s3://bucket/key.
    input: String,
    /// Where to write segments/, audio/ and manifest.json: a directory or s3://bucket/prefix.
    output: String,
    /// Target segment length in seconds; segments start at the first keyframe at or after
    /// each multiple of it.
    #[arg(long, env = "SPLITTER_SEGMENT_SECONDS", default_value_t = 10.0, value_name = "N")]
    segment_seconds: f64,
    /// Frames of context each segment file also carries before and after its own frames
    /// (whole GOPs, counted in lead_in_frames/trailing_frames; fewer at the video's ends).
    #[arg(long, env = "SPLITTER_CONTEXT_FRAMES", default_value_t = 0, value_name = "N")]
    context_frames: u64,
    #[command(flatten)]
    upload: UploadArgs,
    /// MiB of segments cut and not uploaded yet beyond which the cut pauses (S3 output): the
    /// scratch space a split needs is about the input plus this.
    #[arg(long, env = "SPLITTER_UPLOAD_BACKLOG_MIB", default_value_t = 256, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    upload_backlog_mib: u64,
    /// Download, cut and upload one after the other instead of overlapping them (for
    /// benchmarks and troubleshooting; uses scratch space for every segment).
    #[arg(long, env = "SPLITTER_SEQUENTIAL")]
    sequential: bool,
}

/// How outputs go to S3 (split and join).
#[derive(Debug, Args)]
struct UploadArgs {
    /// Concurrent S3 requests when uploading.
    #[arg(long, env = "SPLITTER_UPLOAD_CONCURRENCY", default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    upload_concurrency: u16,
    /// Multipart part size for S3 uploads, in MiB (files larger than one part go multipart).
    #[arg(long, env = "SPLITTER_PART_SIZE_MIB", default_value_t = 16, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(5..=5120))]
    part_size_mib: u64,
}

#[derive(Debug, Args)]
struct JoinArgs {
    /// The split's output (a directory or s3://bucket/prefix): its manifest.json, segments and
    /// audio files.
    split_output: String,
    /// The workers' results (a directory or s3://bucket/prefix): one video per segment, named
    /// like it (`000003.*`), holding exactly the frames the segment owns.
    processed: String,
    /// The file to write (a path or s3://bucket/key): `.mp4` (fast start) or `.mkv`; MP4
    /// when there is no extension.
    output_file: String,
    #[command(flatten)]
    upload: UploadArgs,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Output to check: a directory or s3://bucket/prefix.
    output: String,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let work_dir = cli.work_dir.unwrap_or_else(std::env::temp_dir);
    let limits =
        s3::retry::Limits::from_env().map_err(|e| error::fail(Kind::Usage, e.to_string()))?;
    s3::retry::Limits::install(limits);
    match cli.cmd {
        Cmd::Split(args) => {
            let opts = SplitOptions {
                input: args.input,
                output: args.output,
                segment_seconds: args.segment_seconds,
                context_frames: args.context_frames,
                work_dir,
                upload_concurrency: usize::from(args.upload.upload_concurrency),
                part_size: args.upload.part_size_mib << 20,
                upload_backlog: args.upload_backlog_mib << 20,
                sequential: args.sequential,
                ffmpeg: cli.ffmpeg,
                ffprobe: cli.ffprobe,
            };
            split::split(&opts).await.map(|_| ())
        }
        Cmd::Join(args) => {
            let opts = JoinOptions {
                split_output: args.split_output,
                processed: args.processed,
                output: args.output_file,
                work_dir,
                upload_concurrency: usize::from(args.upload.upload_concurrency),
                part_size: args.upload.part_size_mib << 20,
                ffmpeg: cli.ffmpeg,
                ffprobe: cli.ffprobe,
            };
            join::join(&opts).await.map(|_| ())
        }
        Cmd::Verify(args) => {
            let opts = VerifyOptions {
                output: args.output,
                work_dir,
                ffmpeg: cli.ffmpeg,
                ffprobe: cli.ffprobe,
            };
            let report = verify::verify(&opts).await?;
            for problem in &report.problems {
                tracing::error!(problem = %problem, "verify: {problem}");
            }
            if report.problems.is_empty() {
                tracing::info!(files = report.files, "output verified");
                Ok(())
            } else {
                Err(error::fail(
                    Kind::VerifyFailed,
                    format!("verification failed: {} problem(s)", report.problems.len()),
                ))
            }
        }
    }
}

async fn interrupted() -> Kind {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => return Kind::Interrupted,
                _ = tokio::signal::ctrl_c() => return Kind::Interrupted,
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    Kind::Interrupted
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = err.print();
                return Kind::Usage.into();
            }
            // One line, not clap's multi-line usage block.
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("error: bad command line");
            eprintln!("{first} (see `splitter --help`)");
            return Kind::Usage.into();
        }
    };
    let format = cli.log_format.resolve();
    logging::init(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("splitter")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Kind::Other.into();
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(cli) => result,
            kind = interrupted() => Err(error::fail(kind, "interrupted: no manifest was written")),
        }
    });
    // Drop pending tasks (and kill children) before exiting.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let kind = error::kind_of(&err);
            let message = error::one_line(&err);
            match format {
                LogFormat::Json => {
                    tracing::error!(
                        exit_code = kind.exit_code(),
                        kind = kind.as_str(),
                        "{message}"
                    );
                }
                _ => eprintln!("error: {message}"),
            }
            kind.into()
        }
    }
}
