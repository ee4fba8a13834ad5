//! What `srql serve` tests share: its log, read while it runs.
//!
//! The service is started on port 0 and its bound addresses are read from this log:
//! a port picked by a test and released before the service binds it can be taken in
//! between, and a start that failed after binding the API looked like a reset peer.

use std::io::{BufRead, BufReader};
use std::process::ChildStderr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The service's stderr, read on a thread so the pipe never fills, kept for messages.
pub struct ServiceLog {
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl ServiceLog {
    pub fn follow(stderr: ChildStderr) -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lock").push(line);
            }
        });
        ServiceLog { lines, reader }
    }

    /// The whole log, once the service has exited and closed its stderr.
    pub fn finish(self) -> String {
        self.reader.join().expect("stderr reader");
        self.lines.lock().expect("log lock").join("\n")
    }

    /// The port in the first line saying `message`, waiting for it until `deadline`.
    pub fn text(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    pub fn port_of(&self, message: &str, deadline: Instant) -> u16 {
        loop {
            {
                let lines = self.lines.lock().expect("log lock");
                if let Some(port) = lines
                    .iter()
                    .filter(|l| l.contains(message))
                    .find_map(|l| port_in(l))
                {
                    return port;
                }
                assert!(
                    Instant::now() < deadline,
                    "serve never said {message:?}; its log:\n{}",
                    lines.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn port_in(line: &str) -> Option<u16> {
    let after = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
