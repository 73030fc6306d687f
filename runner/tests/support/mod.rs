//! Shared by the integration tests: the default kernel's image (built once per test binary), a
//! loopback HTTP mirror, a throwaway signing key.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the mirror answers for one path.
#[derive(Clone)]
pub enum Reply {
    Serve(Vec<u8>),
    /// Serve a file's bytes (a real kernel tarball is too big to hold twice).
    File(PathBuf),
    /// Promise the whole body, send half of it, close.
    Truncate(Vec<u8>),
    /// Send the headers and a few bytes, then nothing (until the client gives up).
    Stall,
}

#[derive(Default)]
struct Mirror {
    routes: HashMap<String, Reply>,
    requests: Vec<String>,
}

/// A loopback HTTP/1.0 server; its base URL stands in for kernel.org's /pub/linux/kernel.
pub struct Server {
    pub base: String,
    state: Arc<Mutex<Mirror>>,
}

impl Server {
    pub fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/mirror", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Mirror {
            routes,
            requests: Vec::new(),
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(conn, &state));
            }
        });
        Server { base, state }
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<Mirror>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let reply = {
        let mut s = state.lock().unwrap();
        s.requests.push(path.clone());
        s.routes.get(path.trim_start_matches("/mirror")).cloned()
    };
    let header = |len: usize| format!("HTTP/1.0 200 OK\r\nContent-Length: {len}\r\n\r\n");
    let _ = match reply {
        None => conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        Some(Reply::Serve(body)) => conn
            .write_all(header(body.len()).as_bytes())
            .and_then(|()| conn.write_all(&body)),
        Some(Reply::File(path)) => match std::fs::File::open(&path) {
            Ok(mut f) => {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0) as usize;
                conn.write_all(header(len).as_bytes())
                    .and_then(|()| std::io::copy(&mut f, &mut conn).map(|_| ()))
            }
            Err(_) => conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        },
        Some(Reply::Truncate(body)) => conn
            .write_all(header(body.len()).as_bytes())
            .and_then(|()| conn.write_all(&body[..body.len() / 2])),
        Some(Reply::Stall) => {
            let _ = conn.write_all(header(1 << 20).as_bytes());
            let _ = conn.write_all(&[0u8; 16]);
            std::thread::sleep(Duration::from_secs(120));
            Ok(())
        }
    };
}

/// Run `cmd`, which must succeed.
pub fn sh(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throwaway OpenPGP signing key in its own gpg home under `dir`.
pub struct SigningKey {
    home: PathBuf,
    pub fingerprint: String,
}

impl SigningKey {
    pub fn new(dir: &std::path::Path) -> SigningKey {
        use std::os::unix::fs::PermissionsExt;
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut key = SigningKey {
            home,
            fingerprint: String::new(),
        };
        key.gpg(&[
            "--quick-gen-key",
            "throwaway <t@invalid>",
            "ed25519",
            "sign",
            "1d",
        ]);
        let listed = String::from_utf8(key.gpg(&["--with-colons", "--list-keys"]).stdout).unwrap();
        key.fingerprint = listed
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|r| r.trim_matches(':').to_owned())
            .unwrap();
        key
    }

    fn gpg(&self, args: &[&str]) -> std::process::Output {
        sh(Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args))
    }

    /// Write the public key, armored, to `path`.
    pub fn export(&self, path: &std::path::Path) {
        self.gpg(&[
            "--armor",
            "--output",
            path.to_str().unwrap(),
            "--export",
            &self.fingerprint,
        ]);
    }

    /// `text`, clearsigned.
    pub fn clearsign(&self, text: &str) -> Vec<u8> {
        let plain = self.home.join("to-sign");
        let signed = self.home.join("signed.asc");
        let _ = std::fs::remove_file(&signed);
        std::fs::write(&plain, text).unwrap();
        self.gpg(&[
            "--clearsign",
            "--output",
            signed.to_str().unwrap(),
            plain.to_str().unwrap(),
        ]);
        std::fs::read(&signed).unwrap()
    }
}

/// The `sha256sums` line of `bytes` as file `name`.
pub fn sums_line(bytes: &[u8], name: &str) -> String {
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{sha}  {name}\n")
}

/// The default kernel's image, built on first use, and the run settings for this machine.
pub fn default_image() -> &'static (kspec::image::Image, kspec::exec::RunSettings) {
    use kspec::{exec, image, project::Project};
    static IMAGE: std::sync::OnceLock<(image::Image, exec::RunSettings)> =
        std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        let project = Project::locate().expect("kspec project");
        let list = image::kernel_list(&project).expect("kernel list");
        let kernels = list.select(None).expect("default kernel");
        let progress = image::StderrProgress::default();
        let p =
            exec::prepare(&project, &kernels, &Default::default(), &progress).expect("image build");
        (p.images.into_iter().next().expect("one image"), p.settings)
    })
}

/// Assert that case report `r` passed, showing its outcome if not.
pub fn passed(r: &kspec::exec::CaseReport) {
    assert!(
        matches!(r.outcome, kspec::exec::Outcome::Passed),
        "{} should pass: {:?}",
        r.id.case,
        r.outcome
    );
}
