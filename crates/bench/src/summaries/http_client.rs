//! A minimal HTTP/1.1 client: one keep-alive connection, `POST` with a JSON body.
//!
//! Written here rather than taken from a crate because the benchmark needs exactly this
//! much, and a client with its own pool, redirects and decompression would add work of
//! its own to every timed request. Responses with `Content-Length` or chunked bodies are
//! read; anything else is an error (the service never sends it).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest status or header line accepted, so a broken peer cannot make us buffer forever.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct HttpClient {
    addr: SocketAddr,
    stream: BufReader<TcpStream>,
}

impl HttpClient {
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        // Requests go out in one write; without this, Nagle could hold a small one back.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        Ok(Self {
            addr,
            stream: BufReader::new(stream),
        })
    }

    /// Sends `body` as JSON to `path` and reads the whole response. After an error the
    /// connection is in an unknown state: drop the client and connect again.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<Response, String> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream
            .get_mut()
            .write_all(&request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        read_response(&mut self.stream).await
    }
}

async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Response, String> {
    let status_line = read_line(reader).await?;
    let status = parse_status(&status_line)?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line `{line}`"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(reader).await?
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length `{len}`"))?;
        let mut body = vec![0; len];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        body
    } else {
        return Err("response has neither content-length nor chunked encoding".into());
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn parse_status(line: &str) -> Result<u16, String> {
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| format!("bad status line `{line}`")),
        _ => Err(format!("bad status line `{line}`")),
    }
}

/// One CRLF-terminated line without its terminator.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Result<String, String> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    if line.last() != Some(&b'\n') {
        return Err(format!("response line longer than {MAX_LINE} bytes"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| "response line is not UTF-8".into())
}

async fn read_chunked<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size `{line}`"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            while !read_line(reader).await?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading a chunk: {e}"))?;
        if !read_line(reader).await?.is_empty() {
            return Err("chunk not followed by CRLF".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &str) -> Result<Response, String> {
        read_response(&mut BufReader::new(raw.as_bytes())).await
    }

    #[tokio::test]
    async fn reads_a_content_length_response_and_leaves_the_next_one() {
        let raw = "HTTP/1.1 200 OK\r\nX-Srql-Source: on_the_fly\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 400";
        let mut reader = BufReader::new(raw.as_bytes());
        let r = read_response(&mut reader).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-srql-source"), Some("on_the_fly"));
        assert_eq!(r.body, b"hello");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "HTTP/1.1 400");
    }

    #[tokio::test]
    async fn reads_a_chunked_response() {
        let r = parse("HTTP/1.1 500 Internal\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(r.body, b"abc0123456789");
    }

    #[tokio::test]
    async fn rejects_what_it_cannot_frame() {
        assert!(parse("HTTP/1.1 200 OK\r\n\r\nbody").await.is_err());
        assert!(parse("SSH-2.0 hello\r\n\r\n").await.is_err());
        assert!(parse("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
            .await
            .is_err());
        assert!(parse("").await.is_err());
    }
}
