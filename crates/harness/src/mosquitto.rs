//! A Mosquitto MQTT broker of the harness's own on 127.0.0.1.
//!
//! The machine may run a broker on 1883 already; tests use their own on a
//! free port so they can restart it (QoS 1 redelivery tests) without
//! disturbing anything else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::Error;
use crate::install;
use crate::process::{ServiceProcess, free_port, poll_until, run_dir, system_account};

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Messages the broker queues for a client beyond its in-flight window
/// before it drops new ones. Mosquitto's default is 100: a subscriber that
/// acknowledges only after delivery (sensor-forwarder) falls that far
/// behind in a burst. docs/sensor-forwarder.md asks brokers for more.
const MAX_QUEUED_MESSAGES: u32 = 100_000;
/// Ports tried before giving up.
const PORT_ATTEMPTS: usize = 3;

/// A running Mosquitto broker with persistence on, so a graceful
/// [restart](Mosquitto::restart) keeps persistent sessions and their queued
/// QoS 1 messages.
#[derive(Debug)]
pub struct Mosquitto {
    process: Mutex<Option<ServiceProcess>>,
    port: u16,
    /// A second listener with TLS ([`Mosquitto::start_tls`]).
    tls_port: Option<u16>,
    /// Clients must log in ([`Mosquitto::start_with_password`]).
    password: bool,
    run_dir: tempfile::TempDir,
    user: Option<(u32, u32)>,
}

/// PEM files of a TLS broker's test PKI: a CA, and a client certificate
/// the CA signed (the broker requires one).
#[derive(Debug, Clone)]
pub struct TlsTestFiles {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Mosquitto {
    /// One broker for the whole test process, started on first use. Tests
    /// share it through topics and client ids of their own.
    pub fn shared() -> Result<&'static Mosquitto, Error> {
        static SHARED: OnceLock<Mosquitto> = OnceLock::new();
        static STARTING: Mutex<()> = Mutex::new(());
        if let Some(m) = SHARED.get() {
            return Ok(m);
        }
        let _guard = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = SHARED.get() {
            return Ok(m);
        }
        let started = Mosquitto::start()?;
        Ok(SHARED.get_or_init(|| started))
    }

    /// Starts a broker of its own.
    pub fn start() -> Result<Mosquitto, Error> {
        Mosquitto::start_with(false, None)
    }

    /// Starts a broker of its own with a second, TLS listener
    /// ([`Mosquitto::tls_url`]) that requires a client certificate; the
    /// certificates are made for the occasion ([`Mosquitto::tls_files`]).
    pub fn start_tls() -> Result<Mosquitto, Error> {
        Mosquitto::start_with(true, None)
    }

    /// Starts a broker of its own that admits only `user` with `password`
    /// (a password file made with `mosquitto_passwd`).
    pub fn start_with_password(user: &str, password: &str) -> Result<Mosquitto, Error> {
        Mosquitto::start_with(false, Some((user, password)))
    }

    fn start_with(tls: bool, login: Option<(&str, &str)>) -> Result<Mosquitto, Error> {
        install::ensure_mosquitto()?;
        let run_dir = run_dir("mosquitto")?;
        // Started as root, Mosquitto switches to its own account itself, and
        // a process that changes its credentials loses its parent-death
        // signal: it would outlive the tests. So it is started as that
        // account (the persistence directory must then be its own).
        let user = if install::is_root() {
            let account = system_account("mosquitto")?;
            std::os::unix::fs::chown(run_dir.path(), Some(account.0), Some(account.1))
                .map_err(|e| Error::io(format!("chown {}", run_dir.path().display()), e))?;
            Some(account)
        } else {
            None
        };
        if tls {
            write_test_pki(run_dir.path(), user)?;
        }
        if let Some((name, password)) = login {
            write_password_file(run_dir.path(), name, password, user)?;
        }
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let tls_port = if tls { Some(free_port()?) } else { None };
            match launch(&run_dir, port, tls_port, login.is_some(), user) {
                Ok(process) => {
                    return Ok(Mosquitto {
                        process: Mutex::new(Some(process)),
                        port,
                        tls_port,
                        password: login.is_some(),
                        run_dir,
                        user,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::io(
                "starting Mosquitto",
                std::io::Error::other("no attempt made"),
            )
        }))
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's URL, e.g. `mqtt://127.0.0.1:41883`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The TLS listener's URL (`mqtts://127.0.0.1:PORT`), for a broker
    /// from [`Mosquitto::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("mqtts://127.0.0.1:{port}"))
    }

    /// The test PKI of a broker from [`Mosquitto::start_tls`].
    pub fn tls_files(&self) -> Option<TlsTestFiles> {
        self.tls_port.map(|_| {
            let dir = self.run_dir.path();
            TlsTestFiles {
                ca: dir.join("ca.pem"),
                client_cert: dir.join("client.pem"),
                client_key: dir.join("client.key"),
            }
        })
    }

    /// Stops the broker gracefully (it saves its persistence file) and
    /// starts it again on the same port.
    pub fn restart(&self) -> Result<(), Error> {
        self.restart_after(std::time::Duration::ZERO)
    }

    /// [`Mosquitto::restart`], with the broker down for `down` between.
    pub fn restart_after(&self, down: std::time::Duration) -> Result<(), Error> {
        let mut guard = self.process.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut process) = guard.take() {
            process.stop();
        }
        std::thread::sleep(down);
        *guard = Some(launch(
            &self.run_dir,
            self.port,
            self.tls_port,
            self.password,
            self.user,
        )?);
        Ok(())
    }
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all PEM, in `dir` (readable by the broker's account).
fn write_test_pki(dir: &Path, user: Option<(u32, u32)>) -> Result<(), Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let pki = |e: rcgen::Error| Error::io("making test certificates", std::io::Error::other(e));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "shardline test CA");
    let ca_key = KeyPair::generate().map_err(pki)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, common_name: &str| -> Result<(String, String), Error> {
        let mut params = CertificateParams::new(names).map_err(pki)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().map_err(pki)?;
        let cert = params.signed_by(&key, &issuer).map_err(pki)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
        "127.0.0.1",
    )?;
    let (client_cert, client_key) = leaf(Vec::new(), "shardline test client")?;
    for (name, text) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server_cert),
        ("server.key", server_key),
        ("client.pem", client_cert),
        ("client.key", client_key),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// `passwd` in `dir`: one user, hashed by `mosquitto_passwd`.
fn write_password_file(
    dir: &Path,
    name: &str,
    password: &str,
    user: Option<(u32, u32)>,
) -> Result<(), Error> {
    let path = dir.join("passwd");
    let status = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(&path)
        .args([name, password])
        .status()
        .map_err(|e| Error::io("running mosquitto_passwd", e))?;
    if !status.success() {
        return Err(Error::io(
            "mosquitto_passwd",
            std::io::Error::other(status.to_string()),
        ));
    }
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
    }
    Ok(())
}

fn launch(
    run_dir: &tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
    password: bool,
    user: Option<(u32, u32)>,
) -> Result<ServiceProcess, Error> {
    let binary = install::ensure_mosquitto()?;
    let dir = run_dir.path();
    let config = dir.join("mosquitto.conf");
    let text = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous {anonymous}\n\
         persistence true\n\
         max_queued_messages {MAX_QUEUED_MESSAGES}\n\
         persistence_location {}/\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n",
        dir.display(),
        anonymous = !password,
    );
    let text = if password {
        format!("{text}password_file {}/passwd\n", dir.display())
    } else {
        text
    };
    let text = match tls_port {
        None => text,
        Some(tls_port) => format!(
            "{text}listener {tls_port} 127.0.0.1\n\
             cafile {dir}/ca.pem\n\
             certfile {dir}/server.pem\n\
             keyfile {dir}/server.key\n\
             require_certificate true\n",
            dir = dir.display()
        ),
    };
    std::fs::write(&config, text)
        .map_err(|e| Error::io(format!("writing {}", config.display()), e))?;
    let mut command = Command::new(binary);
    command.arg("-c").arg(&config).current_dir(dir);
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    let log = dir.join(format!("mosquitto-{port}.log"));
    let mut process = ServiceProcess::spawn("Mosquitto", command, &log, false, libc::SIGTERM)?;
    let ready = poll_until(START_TIMEOUT, || {
        process.is_running()
            && [Some(port), tls_port]
                .into_iter()
                .flatten()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    });
    if !ready {
        return Err(process.not_ready(START_TIMEOUT));
    }
    Ok(process)
}
