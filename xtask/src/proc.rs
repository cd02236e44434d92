//! Background processes (the local stack's servers, dockerd): start them detached with a log,
//! find them again through PID files, check they are still the process we started, stop them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Starts `cmd` in its own process group (a Ctrl-C in the terminal does not reach it), stdin
/// closed, stdout and stderr appended to `log`. Returns its PID; the process outlives xtask.
pub fn spawn_detached(mut cmd: Command, log: &Path) -> Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone().with_context(|| format!("cannot open {}", log.display()))?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `{program}`"))?;
    Ok(child.id())
}

/// The command line of a running process.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Whether `pid` runs (not a zombie) and its command line contains `marker`, so a PID reused by
/// an unrelated process is never taken for ours.
pub fn alive(pid: u32, marker: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S …`: the state follows the last `)`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z' | 'X') | None) {
        return false;
    }
    // While a process execs, its command line reads empty for a moment: with no marker, the
    // state alone decides.
    marker.is_empty() || cmdline(pid).is_some_and(|args| args.iter().any(|a| a.contains(marker)))
}

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn write_pid(path: &Path, pid: u32) -> Result<()> {
    std::fs::write(path, format!("{pid}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Sends SIGTERM, waits up to `grace` for the process to end, then SIGKILL.
pub fn stop(pid: u32, marker: &str, grace: Duration) -> Result<()> {
    if !alive(pid, marker) {
        return Ok(());
    }
    // From here on, the state alone says whether it still runs: an exiting process's command
    // line reads empty before it is gone.
    signal(pid, "TERM")?;
    if wait_until(grace, || !alive(pid, "")) {
        return Ok(());
    }
    signal(pid, "KILL")?;
    if wait_until(Duration::from_secs(5), || !alive(pid, "")) {
        return Ok(());
    }
    bail!("process {pid} ({marker}) did not stop, even after SIGKILL")
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    // `kill` the program: the workspace forbids `unsafe`, so no libc::kill.
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .context("cannot run `kill`")?;
    // A process that ended meanwhile is fine.
    if !status.success() && Path::new(&format!("/proc/{pid}")).exists() {
        bail!("cannot send SIG{sig} to process {pid}");
    }
    Ok(())
}

/// Polls `done` every 100 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether nothing listens on 127.0.0.1:`port` (we could bind it).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The HTTP status of `GET path` on 127.0.0.1:`port`, or `None` when nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 32];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..]).ok()? {
            0 => break,
            k => n += k,
        }
    }
    // "HTTP/1.1 200 OK"
    let line = String::from_utf8_lossy(&head[..n]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The last non-empty line of a log file, for one-line error messages.
pub fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_bogus_marker_is_not() {
        let me = std::process::id();
        let args = cmdline(me).expect("own cmdline");
        assert!(alive(me, &args[0]));
        assert!(!alive(me, "certainly-not-in-the-command-line"));
        assert!(!alive(u32::MAX - 1, ""));
    }

    #[test]
    fn a_bound_port_is_not_free_and_answers_no_http() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(!port_free(port));
        drop(listener);
        // A child forked by a test running in parallel may hold the socket until its exec.
        assert!(wait_until(Duration::from_secs(2), || port_free(port)));
        assert_eq!(http_status(port, "/"), None);
    }

    #[test]
    fn a_detached_process_is_found_and_stopped() {
        let dir = std::env::temp_dir().join(format!("xtask-proc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("sleep.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 600"]);
        let pid = spawn_detached(cmd, &log).expect("spawn");
        let pid_file = dir.join("sleep.pid");
        write_pid(&pid_file, pid).expect("pid file");
        assert_eq!(read_pid(&pid_file), Some(pid));
        // The marker is in the `sh -c` line too: wait for the exec, which follows the echo, so
        // the process stopped is `sleep` and the log is complete.
        let exec_done =
            || cmdline(pid).is_some_and(|args| args.first().is_some_and(|a| a == "sleep"));
        assert!(wait_until(Duration::from_secs(5), exec_done));
        assert!(wait_until(Duration::from_secs(5), || alive(pid, "sleep")));
        stop(pid, "sleep", Duration::from_secs(5)).expect("stop");
        assert!(!alive(pid, "sleep"));
        assert_eq!(last_line(&log).as_deref(), Some("started"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
