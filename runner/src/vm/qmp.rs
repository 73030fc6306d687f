//! A minimal QMP client (QEMU's JSON monitor on a UNIX socket): enough to save a running VM's
//! state to a file and to see a restored one running.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: QEMU closed the monitor")]
    Closed,
    /// QEMU said something that is not QMP.
    #[error("QMP: {0}")]
    Protocol(String),
    #[error("QMP {command}: {desc}")]
    Command { command: String, desc: String },
    /// What was waited for ended otherwise (a failed migration, a panicked guest, the deadline).
    #[error("{0}")]
    Ended(String),
    /// A snapshot file could not be written or renamed.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect to the socket QEMU listens on (retrying until `deadline`: QEMU creates it while
    /// starting) and leave capabilities negotiation mode.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Qmp, QmpError> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(source) if Instant::now() >= deadline => {
                    return Err(QmpError::Connect {
                        path: path.to_owned(),
                        source,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        stream.set_read_timeout(Some(left.max(Duration::from_millis(100))))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!("not a greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(QmpError::Closed),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| QmpError::Protocol(format!("{e}: {}", line.trim_end()))),
            Err(e) => Err(e.into()),
        }
    }

    /// Run `command`; its `return` value (events in between are skipped).
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let req = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{req}")?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Command {
                    command: command.into(),
                    desc: e["desc"].to_string(),
                });
            }
        }
    }

    /// Run `query` every `every` until `done` says how it ended (Some), or `deadline`.
    fn poll(
        &mut self,
        query: &str,
        every: Duration,
        deadline: Instant,
        done: impl Fn(&Value) -> Option<Result<(), QmpError>>,
    ) -> Result<(), QmpError> {
        loop {
            let r = self.execute(query, json!({}))?;
            if let Some(end) = done(&r) {
                return end;
            }
            if Instant::now() >= deadline {
                return Err(QmpError::Ended(format!(
                    "{query}: still {} at the deadline",
                    r["status"]
                )));
            }
            std::thread::sleep(every);
        }
    }

    /// Until the migration completes (Ok) or fails, or `deadline`.
    pub fn wait_migration(&mut self, deadline: Instant) -> Result<(), QmpError> {
        self.poll(
            "query-migrate",
            Duration::from_millis(5),
            deadline,
            |r| match r["status"].as_str() {
                Some("completed") => Some(Ok(())),
                Some("failed" | "cancelled") => Some(Err(QmpError::Ended(format!(
                    "migration {}: {}",
                    r["status"], r["error-desc"]
                )))),
                _ => None,
            },
        )
    }

    /// Until the VM runs, or `deadline`.
    pub fn wait_running(&mut self, deadline: Instant) -> Result<(), QmpError> {
        self.poll(
            "query-status",
            Duration::from_millis(2),
            deadline,
            |r| match r["status"].as_str() {
                Some("running") => Some(Ok(())),
                Some(s @ ("internal-error" | "guest-panicked" | "shutdown")) => {
                    Some(Err(QmpError::Ended(format!("restored VM is {s}"))))
                }
                _ => None,
            },
        )
    }
}
