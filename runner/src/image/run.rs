//! Running build commands with their output in a log file, so failures name the log.

use super::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Run `cmd`, appending stdout+stderr to `log` and passing each line to `on_line`.
/// A failure is one line: what failed, the most telling log line, and the log path.
pub fn run_logged(
    mut cmd: Command,
    log: &Path,
    what: &str,
    on_line: &dyn Fn(&str),
) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log, e))?;
    let _ = writeln!(file, "$ {cmd:?}");
    let (reader, writer) = std::io::pipe().map_err(|e| Error::Command(format!("pipe: {e}")))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| Error::Command(format!("pipe: {e}")))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Command(format!("{what}: cannot run {:?}: {e}", cmd.get_program())))?;
    drop(cmd); // close our copies of the pipe's write end
    let mut first_error: Option<String> = None;
    for line in BufReader::new(reader).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let _ = writeln!(file, "{line}");
        if first_error.is_none() && is_error_line(&line) {
            first_error = Some(line.trim().to_owned());
        }
        on_line(&line);
    }
    let status = child
        .wait()
        .map_err(|e| Error::Command(format!("{what}: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let cause = first_error.map(|e| format!(": {e}")).unwrap_or_default();
    Err(Error::Command(format!(
        "{what} failed ({status}){cause}; log: {}",
        log.display()
    )))
}

fn is_error_line(l: &str) -> bool {
    l.contains("error:")
        || l.starts_with("curl: (")
        || l.contains("Error ")
        || l.starts_with("E: ")
        || l.contains("*** ")
}
