//! A minimal QMP client (QEMU's JSON monitor on a UNIX socket): enough to save a running VM's
//! state to a file and to see a restored one running.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect to the socket QEMU listens on (retrying until `deadline`: QEMU creates it while
    /// starting) and leave capabilities negotiation mode.
    pub fn connect(path: &Path, deadline: Instant) -> Result<Qmp, String> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("QMP socket {}: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(100))))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP: QEMU closed the monitor".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("QMP: {e}: {line}")),
            Err(e) => Err(format!("QMP: {e}")),
        }
    }

    /// Run `command`; its `return` value (events in between are skipped).
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let req = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{req}").map_err(|e| format!("QMP: {e}"))?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(format!("QMP {command}: {}", e["desc"]));
            }
        }
    }

    /// Run `query` every `every` until `done` says how it ended (Some), or `deadline`.
    fn poll(
        &mut self,
        query: &str,
        every: Duration,
        deadline: Instant,
        done: impl Fn(&Value) -> Option<Result<(), String>>,
    ) -> Result<(), String> {
        loop {
            let r = self.execute(query, json!({}))?;
            if let Some(end) = done(&r) {
                return end;
            }
            if Instant::now() >= deadline {
                return Err(format!("{query}: still {} at the deadline", r["status"]));
            }
            std::thread::sleep(every);
        }
    }

    /// Until the migration completes (Ok) or fails, or `deadline`.
    pub fn wait_migration(&mut self, deadline: Instant) -> Result<(), String> {
        self.poll(
            "query-migrate",
            Duration::from_millis(5),
            deadline,
            |r| match r["status"].as_str() {
                Some("completed") => Some(Ok(())),
                Some("failed" | "cancelled") => Some(Err(format!(
                    "migration {}: {}",
                    r["status"], r["error-desc"]
                ))),
                _ => None,
            },
        )
    }

    /// Until the VM runs, or `deadline`.
    pub fn wait_running(&mut self, deadline: Instant) -> Result<(), String> {
        self.poll(
            "query-status",
            Duration::from_millis(2),
            deadline,
            |r| match r["status"].as_str() {
                Some("running") => Some(Ok(())),
                Some(s @ ("internal-error" | "guest-panicked" | "shutdown")) => {
                    Some(Err(format!("restored VM is {s}")))
                }
                _ => None,
            },
        )
    }
}
