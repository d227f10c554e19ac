//! Real `redis-server` and `memcached` processes for the backend tests and benches: each on a
//! free loopback port of its own, started by the test, killed when dropped. No mocks.
//!
//! ```ignore
//! #[path = "support/servers.rs"]
//! mod servers;
//! let redis = servers::Server::redis();
//! let url = redis.redis_url();
//! ```
//!
//! The binaries come from Debian's `redis-server` and `memcached` packages (`.ci/run` installs
//! them when missing).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Memcached,
}

/// A server process on `127.0.0.1:port`; dropping it kills the process.
pub struct Server {
    kind: Kind,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// A fresh `redis-server` (no persistence) on a free port, accepting connections.
    pub fn redis() -> Server {
        Server::start_new(Kind::Redis)
    }

    /// A fresh `memcached` (64 MB) on a free port, accepting connections.
    pub fn memcached() -> Server {
        Server::start_new(Kind::Memcached)
    }

    fn start_new(kind: Kind) -> Server {
        // A port found free may be taken by another test before the server binds it: retry.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "memo-{}-{}-{port}",
                match kind {
                    Kind::Redis => "redis",
                    Kind::Memcached => "memcached",
                },
                std::process::id()
            ));
            let mut server = Server {
                kind,
                port,
                dir,
                child: None,
            };
            match server.try_start() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start {kind:?}: {last_error}");
    }

    /// Starts the server again on its port (after [`stop`](Server::stop)): a restart.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        if let Err(e) = self.try_start() {
            panic!(
                "could not restart {:?} on port {}: {e}",
                self.kind, self.port
            );
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let port = self.port.to_string();
        let mut command = match self.kind {
            Kind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "no", "--protected-mode", "no"])
                    .args(["--daemonize", "no", "--loglevel", "warning"])
                    .arg("--dir")
                    .arg(&self.dir);
                c
            }
            Kind::Memcached => {
                let mut c = Command::new("memcached");
                // -u only matters as root, where memcached insists on dropping privileges.
                c.args([
                    "-l",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "0",
                    "-m",
                    "64",
                    "-t",
                    "2",
                ])
                .args(["-u", "nobody"]);
                c
            }
        };
        let binary = match self.kind {
            Kind::Redis => "redis-server",
            Kind::Memcached => "memcached",
        };
        install_servers_if_missing(binary);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run `{binary}` ({e}); install it with \
                     `apt-get install -y redis-server memcached` (the tests try when run as root)"
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.answers() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("`{binary}` exited at start-up: {status}"));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "`{binary}` did not answer within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers a ping (`PING` / `version`) now.
    pub fn answers(&self) -> bool {
        let (request, reply): (&[u8], &[u8]) = match self.kind {
            Kind::Redis => (b"PING\r\n", b"+PONG"),
            Kind::Memcached => (b"version\r\n", b"VERSION"),
        };
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(request).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => return matches!(read, Ok(n) if buf[..n].starts_with(reply)),
            }
        }
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but never answered,
    /// as with a server that hangs.
    pub fn pause(&self) {
        self.signal("-STOP");
        // kill(2) returns before the process has stopped: a request sent right away could still
        // be answered. Wait until the kernel reports it stopped (state `T` in /proc).
        let pid = self.pid().expect("the server is running");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            if matches!(state, Some("T") | Some("t")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server {pid} did not stop: {stat}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the server is running").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against this server and returns its output, trimmed.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        assert_eq!(self.kind, Kind::Redis);
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Sends one memcached text-protocol command (`\r\n` added; `data`, if any, follows on
    /// its own line) and returns the reply up to its terminating line.
    pub fn memcached_command(&self, command: &str, data: Option<&[u8]>) -> String {
        assert_eq!(self.kind, Kind::Memcached);
        let mut stream = TcpStream::connect(self.addr()).expect("connect to memcached");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!("{command}\r\n").into_bytes();
        if let Some(data) = data {
            request.extend_from_slice(data);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        let ends = [
            "END\r\n",
            "STORED\r\n",
            "NOT_STORED\r\n",
            "DELETED\r\n",
            "NOT_FOUND\r\n",
            "ERROR\r\n",
            "HD\r\n",
            "EN\r\n",
        ];
        loop {
            // A signal (another test's server exiting sends SIGCHLD) interrupts a read.
            let n = match stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read.expect("read from memcached"),
            };
            assert!(n > 0, "memcached closed the connection");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            // One-line replies: `HD <flags>`, and the errors (a crawler command gets `BUSY ...`
            // while memcached's own background crawler runs).
            let one_line = ["HD ", "BUSY", "CLIENT_ERROR", "SERVER_ERROR"]
                .iter()
                .any(|start| text.starts_with(start));
            let ended =
                ends.iter().any(|end| text.ends_with(end)) || (one_line && text.ends_with("\r\n"));
            if ended {
                return text.trim_end().to_string();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().unwrap().port()
}

/// On a fresh machine the servers may be missing: as root, install them with apt-get once per
/// process (apt waits for a lock held by another test process installing them too).
fn install_servers_if_missing(binary: &str) {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let found = |b: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found(binary) {
        return;
    }
    let mut tried = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *tried || found(binary) {
        return;
    }
    *tried = true;
    let _ = Command::new("sh")
        .args([
            "-c",
            "[ \"$(id -u)\" = 0 ] && export DEBIAN_FRONTEND=noninteractive && \
             apt-get -o DPkg::Lock::Timeout=300 update -qq && \
             apt-get -o DPkg::Lock::Timeout=300 install -y -qq redis-server memcached",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
