//! A minimal W3C WebDriver client for chromedriver, shared by the traces tab's browser
//! tests and `srql bench-ui`. chromedriver listens on loopback and answers one small JSON
//! request at a time, so blocking HTTP/1.1 over `std::net` covers every command needed
//! without an HTTP client or a WebDriver crate. Calls block: run them off async workers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// Every WebDriver call answers within this, or the test fails rather than hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_binary(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

/// A chromedriver process, killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
    chromium: String,
}

impl Driver {
    /// Starts chromedriver, or says what to install.
    pub fn start() -> Result<Driver, String> {
        const INSTALL: &str = "driving a browser needs Chromium and its WebDriver: install \
            the Debian packages `chromium` and `chromium-driver` (scripts/ensure-deps does)";
        let driver = find_binary(&["chromedriver"]).ok_or(INSTALL)?;
        let chromium = find_binary(&["chromium", "chromium-browser"]).ok_or(INSTALL)?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for chromedriver: {e}"))?
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let d = Driver {
            child,
            port,
            chromium,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = request(port, "GET", "/status", None) {
                if v["ready"].as_bool() == Some(true) {
                    return Ok(d);
                }
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A headless browser window of `width`×`height` CSS pixels.
    pub fn session(&self, width: u32, height: u32) -> Result<Session, String> {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            },
        }}});
        let v = request(self.port, "POST", "/session", Some(&caps))
            .map_err(|e| format!("cannot open a Chromium session: {e}"))?;
        let id = v["sessionId"]
            .as_str()
            .ok_or("no sessionId from chromedriver")?;
        Ok(Session {
            port: self.port,
            id: id.to_string(),
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Session {
    port: u16,
    id: String,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.id);
        request(self.port, method, &path, body.as_ref())
            .map_err(|e| format!("WebDriver {method} {path}: {e}"))
    }

    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    pub fn back(&self) -> Result<(), String> {
        self.call("POST", "/back", Some(json!({}))).map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls the expression `expr` until it is truthy and returns its value; gives up
    /// after `limit`, naming `what`.
    pub fn wait_for(&self, what: &str, expr: &str, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.js(&format!("return ({expr});"), vec![])?;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("waited {limit:?} for {what}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn find(&self, css: &str) -> Result<Element, String> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT]
            .as_str()
            .map(|id| Element(id.to_string()))
            .ok_or_else(|| format!("no element id for {css}: {v}"))
    }

    pub fn click(&self, e: &Element) -> Result<(), String> {
        self.call("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .map(drop)
    }

    /// A real mouse click `dx`, `dy` CSS pixels from the element's centre, for what has no
    /// element of its own (a dot on a canvas).
    pub fn click_at(&self, e: &Element, dx: i64, dy: i64) -> Result<(), String> {
        let mouse = json!({
            "type": "pointer",
            "id": "mouse",
            "parameters": { "pointerType": "mouse" },
            "actions": [
                { "type": "pointerMove", "duration": 0, "origin": { ELEMENT: e.0 }, "x": dx, "y": dy },
                { "type": "pointerDown", "button": 0 },
                { "type": "pointerUp", "button": 0 },
            ],
        });
        self.call("POST", "/actions", Some(json!({ "actions": [mouse] })))
            .map(drop)
    }

    /// Clears the field and types `text` into it as key strokes.
    pub fn type_into(&self, e: &Element, text: &str) -> Result<(), String> {
        self.call("POST", &format!("/element/{}/clear", e.0), Some(json!({})))?;
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// The open `alert()`'s text, if one is open.
    pub fn alert_text(&self) -> Option<String> {
        self.call("GET", "/alert/text", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// The window as a PNG.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or("the screenshot is not a string")?)
            .map_err(|e| format!("the screenshot is not base64: {e}"))?;
        if !png.starts_with(b"\x89PNG") {
            return Err("the screenshot is not a PNG".into());
        }
        Ok(png)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = request(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

/// One WebDriver command: the `value` of the answer, or its error message.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    // chromedriver may leave the socket open after the answer despite `Connection:
    // close`, so read the head, then exactly the body it announces.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the answer's head".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let mut payload = raw[split + 4..].to_vec();
    if header("transfer-encoding").as_deref() == Some("chunked") {
        while !payload.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            payload.extend_from_slice(&buf[..n]);
        }
        payload = dechunk(&payload)?;
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or("no Content-Length in the answer")?;
        while payload.len() < len {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed mid-answer".into());
            }
            payload.extend_from_slice(&buf[..n]);
        }
    }
    let v: Value = serde_json::from_slice(&payload).map_err(|e| format!("bad JSON: {e}"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(err) = value.get("error").and_then(Value::as_str) {
        return Err(format!(
            "{err}: {}",
            value["message"].as_str().unwrap_or_default()
        ));
    }
    Ok(value)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..line]).trim(), 16)
            .map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(out);
        }
        let start = line + 2;
        out.extend_from_slice(b.get(start..start + size).ok_or("short chunk")?);
        b = b.get(start + size + 2..).ok_or("short chunk")?;
    }
}
