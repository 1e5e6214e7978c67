//! Child processes that belong to a test: started with their output in a log file, killed
//! and reaped when dropped, and killed by the kernel if the test process dies first.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The directory with the binaries that `scripts/testenv.sh` installs.
pub fn testenv_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LIVESTREAM_TESTENV_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("LIVESTREAM_TESTENV_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("livestream-testenv")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/livestream-testenv")))
        .unwrap_or_else(|| PathBuf::from("/tmp/livestream-testenv"));
    cache.join("bin")
}

/// The path of one test component, or a panic that says how to install it.
pub fn testenv_bin(name: &str) -> PathBuf {
    let path = testenv_bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/testenv.sh (or scripts/test) to install the test components",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A free UDP port on 127.0.0.1 at the time of the call.
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local address").port()
}

/// Polls `check` until it returns `Some`, at most `timeout`, with a clear panic otherwise.
/// For conditions that have no event to await (a port that starts listening, a file that
/// appears); `what` names the condition in the failure message.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the process and everything it started when the test process goes away: the
/// children are spawned from one thread that lives as long as the process, since the
/// kernel's parent-death signal follows the thread that forked.
fn spawn_from_long_lived_thread(cmd: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("test-process-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the process spawner thread");
        std::sync::Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .expect("spawner lock")
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("process spawner thread is gone"))?;
    reply_rx.recv().map_err(|_| io::Error::other("process spawner thread is gone"))?
}

/// A child process owned by a test.
pub struct ManagedProcess {
    name: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Self {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = spawn_from_long_lived_thread(cmd).unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self { name: name.to_string(), child: Some(child), status: None, log: log.to_path_buf() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else { return false };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.status = Some(status);
                self.child = None;
                false
            }
            Err(_) => false,
        }
    }

    /// Whether the process has exited successfully on its own.
    pub fn exit_success(&mut self) -> bool {
        !self.is_running() && self.status.is_some_and(|s| s.success())
    }

    /// The last `max` bytes of the process's log, for failure messages.
    pub fn log_tail(&self, max: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Panics with the log tail when the process has exited.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!("{} exited; its log ends with:\n{}", self.name, self.log_tail(4000));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM), then kills it after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(child) = self.child.as_mut() {
            // SAFETY: plain kill(2) on a pid we own and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
