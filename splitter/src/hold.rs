//! Back-pressure on the cut: while more bytes of segments wait in the work directory to be
//! uploaded than a limit, ffmpeg is stopped (`SIGSTOP`) and resumed (`SIGCONT`) once the uploads
//! caught up. The scratch space a Batch job needs is then the input plus about the limit, not
//! the input plus every segment, whether ffmpeg reads a file on disk or a download on its stdin
//! (a stopped reader stops the feed too).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

/// A bound on work waiting downstream: the count behind `waiting` (bytes of segments not
/// uploaded yet) should stay at most `limit`.
#[derive(Clone, Debug)]
pub struct Hold {
    waiting: watch::Receiver<u64>,
    limit: u64,
}

impl Hold {
    pub fn new(waiting: watch::Receiver<u64>, limit: u64) -> Hold {
        Hold { waiting, limit }
    }

    /// Waits until the count is above the limit: `false` if its sender is gone first
    /// (nothing will wait any more).
    async fn over(&self) -> bool {
        let mut waiting = self.waiting.clone();
        let over = waiting.wait_for(|bytes| *bytes > self.limit).await.is_ok();
        // `wait_for` answers from the last value even when the sender is gone.
        over && waiting.has_changed().is_ok()
    }

    /// Returns once the count is at most the limit, or its sender is gone.
    async fn clear(&self) {
        let mut waiting = self.waiting.clone();
        let _ = waiting.wait_for(|bytes| *bytes <= self.limit).await;
    }

    /// Stops process `pid` while the count is over the limit and resumes it below, until the
    /// process is gone (a signal fails), the count's sender is gone, or this future is dropped. The caller drops it as soon
    /// as the process has exited, before its id can be reused.
    pub async fn pause_while_over(self, pid: u32) {
        let Ok(raw) = i32::try_from(pid) else { return };
        let pid = Pid::from_raw(raw);
        while self.over().await {
            if kill(pid, Signal::SIGSTOP).is_err() {
                return;
            }
            tracing::debug!(
                waiting_bytes = *self.waiting.borrow(),
                limit_bytes = self.limit,
                "cut paused: segments wait to be uploaded"
            );
            self.clear().await;
            if kill(pid, Signal::SIGCONT).is_err() {
                return;
            }
            tracing::debug!("cut resumed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process state letter from /proc (`T`: stopped), read independently of the code.
    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after_name = stat.rsplit_once(')').expect("comm").1;
        after_name.trim_start().chars().next().expect("state")
    }

    async fn wait_for_state(pid: u32, want: char) {
        for _ in 0..200 {
            if state(pid) == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("process {pid} never reached state {want} (it is {})", state(pid));
    }

    #[tokio::test]
    async fn a_process_is_stopped_over_the_limit_and_resumed_below() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sleep");
        let pid = child.id().expect("pid");
        let (count, waiting) = watch::channel(0u64);
        let task = tokio::spawn(Hold::new(waiting, 100).pause_while_over(pid));
        wait_for_state(pid, 'S').await;
        count.send_replace(101);
        wait_for_state(pid, 'T').await;
        count.send_replace(100);
        wait_for_state(pid, 'S').await;
        count.send_replace(500);
        wait_for_state(pid, 'T').await;
        // The counter gone (its pipeline ended): the process is resumed and left alone.
        drop(count);
        wait_for_state(pid, 'S').await;
        task.await.expect("join");
        child.kill().await.expect("kill");
    }
}
