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
    /// A redis-server that speaks only TLS, with a certificate the harness made (`tls_ca`).
    RedisTls,
    /// A redis-server in cluster mode, with its bus on a second free port (`Cluster`).
    RedisClusterNode {
        bus_port: u16,
    },
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

    /// `count` fresh `memcached` processes, each on its own free port: a pool for consistent
    /// hashing.
    pub fn memcached_pool(count: usize) -> Vec<Server> {
        (0..count).map(|_| Server::memcached()).collect()
    }

    /// A fresh `redis-server` that accepts only TLS on its port, with a CA and a certificate
    /// for `127.0.0.1` made by `openssl` in its folder ([`tls_ca`](Server::tls_ca)).
    pub fn redis_tls() -> Server {
        Server::start_new(Kind::RedisTls)
    }

    fn start_new(kind: Kind) -> Server {
        // A port found free may be taken by another test before the server binds it: retry.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let kind = match kind {
                Kind::RedisClusterNode { .. } => Kind::RedisClusterNode {
                    bus_port: free_port(),
                },
                other => other,
            };
            let dir = std::env::temp_dir().join(format!(
                "memo-{}-{}-{port}",
                match kind {
                    Kind::Redis => "redis",
                    Kind::Memcached => "memcached",
                    Kind::RedisTls => "redis-tls",
                    Kind::RedisClusterNode { .. } => "redis-cluster",
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
        let redis = |dir: &PathBuf| {
            let mut c = Command::new("redis-server");
            c.args(["--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no", "--protected-mode", "no"])
                .args(["--daemonize", "no", "--loglevel", "warning"])
                .arg("--dir")
                .arg(dir);
            c
        };
        let mut command = match self.kind {
            Kind::Redis => {
                let mut c = redis(&self.dir);
                c.args(["--port", &port]);
                c
            }
            Kind::RedisTls => {
                if !self.dir.join("server.key").exists() {
                    make_certificates(&self.dir)?;
                }
                let mut c = redis(&self.dir);
                c.args(["--port", "0", "--tls-port", &port])
                    .args([
                        "--tls-cert-file",
                        "server.crt",
                        "--tls-key-file",
                        "server.key",
                    ])
                    .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"]);
                c
            }
            Kind::RedisClusterNode { bus_port } => {
                let mut c = redis(&self.dir);
                // A node that a restart brings back keeps its identity in nodes.conf; without
                // full coverage, the other masters keep serving while one is down.
                c.args(["--port", &port, "--cluster-enabled", "yes"])
                    .args(["--cluster-port", &bus_port.to_string()])
                    .args(["--cluster-config-file", "nodes.conf"])
                    .args(["--cluster-node-timeout", "1000"])
                    .args(["--cluster-require-full-coverage", "no"]);
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
            Kind::Memcached => "memcached",
            _ => "redis-server",
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
            Kind::Memcached => (b"version\r\n", b"VERSION"),
            Kind::RedisTls => {
                return Command::new("redis-cli")
                    .args(self.cli_args())
                    .arg("PING")
                    .stderr(Stdio::null())
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"PONG"));
            }
            Kind::Redis | Kind::RedisClusterNode { .. } => (b"PING\r\n", b"+PONG"),
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

    /// `redis://127.0.0.1:<port>/` (`rediss://` for the TLS server).
    pub fn redis_url(&self) -> String {
        let scheme = if self.kind == Kind::RedisTls {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The PEM of the CA that signed the TLS server's certificate.
    pub fn tls_ca(&self) -> Vec<u8> {
        assert_eq!(self.kind, Kind::RedisTls);
        std::fs::read(self.dir.join("ca.crt")).expect("the CA certificate")
    }

    /// redis-cli's options to reach this server.
    fn cli_args(&self) -> Vec<String> {
        let mut args = vec![
            "-h".to_string(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
        ];
        if self.kind == Kind::RedisTls {
            args.push("--tls".into());
            args.push("--cacert".into());
            args.push(self.dir.join("ca.crt").display().to_string());
        }
        args
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against this server and returns its output, trimmed.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        assert_ne!(self.kind, Kind::Memcached);
        let output = Command::new("redis-cli")
            .args(self.cli_args())
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

/// A CA and a server certificate for `127.0.0.1` signed by it, in `dir` (`ca.crt`,
/// `server.crt`, `server.key`): rustls accepts no self-signed CA as a server certificate.
fn make_certificates(dir: &std::path::Path) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("cannot run openssl ({e}); install it with apt-get"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.crt"],
        &["-days", "2", "-subj", "/CN=memo test CA"],
    ]
    .concat())?;
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "server.key", "-out", "server.csr"],
        &["-subj", "/CN=127.0.0.1"],
    ]
    .concat())?;
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .map_err(|e| e.to_string())?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])
}

/// A Redis Cluster of `masters` masters (no replicas) on loopback, all slots assigned and the
/// cluster state `ok`; dropping it kills every node.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    pub fn start(masters: usize) -> Cluster {
        let nodes: Vec<Server> = (0..masters)
            .map(|_| Server::start_new(Kind::RedisClusterNode { bus_port: 0 }))
            .collect();
        let addresses: Vec<String> = nodes.iter().map(Server::address).collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(output.status.success(), "cluster create: {output:?}");
        let cluster = Cluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok` and knows every slot.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            loop {
                let info = node.redis_cli(&["CLUSTER", "INFO"]);
                if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis://` URLs of the nodes: what a cluster client starts from.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::redis_url).collect()
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
             apt-get -o DPkg::Lock::Timeout=300 install -y -qq redis-server redis-tools memcached openssl",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
