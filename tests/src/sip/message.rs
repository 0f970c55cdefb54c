//! SIP messages (RFC 3261 §7) as the test controller needs them: parse a datagram into a start line, headers in
//! order and a body; build one back with a correct `Content-Length`; make a response to a request (§8.2.6).
//!
//! Written here, small, because no well-kept crate does it: `rsip` (MIT) is the only SIP message crate of note and
//! has had no commit since August 2022 (0.4.0, on sha2/md-5 0.9, uuid 0.8, bstr 0.2). This is no general SIP
//! parser: no header folding, no multipart bodies, no URI grammar beyond what [`uri_host_port`] reads; what it does
//! not understand is an error, never a panic.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Why a datagram is not a SIP message this module reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// No blank line ends the headers.
    #[error("no end of headers (CRLF CRLF)")]
    NoEndOfHeaders,
    /// The headers are not UTF-8.
    #[error("headers are not UTF-8")]
    NotUtf8,
    /// The first line is neither `METHOD uri SIP/2.0` nor `SIP/2.0 code reason`.
    #[error("bad start line {0:?}")]
    StartLine(String),
    /// A header line without a colon.
    #[error("bad header line {0:?}")]
    HeaderLine(String),
    /// `Content-Length` is not a number or larger than the body.
    #[error("bad Content-Length {0:?}")]
    ContentLength(String),
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD request-uri SIP/2.0`.
    Request {
        /// E.g. `INVITE`.
        method: String,
        /// The Request-URI.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// A SIP message: start line, headers in their order, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// (name as written, value), in order; `Content-Length` is dropped on parse and written by [`Message::to_bytes`].
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes of it).
    pub body: Vec<u8>,
}

/// The full name of a compact header form (RFC 3261 §7.3.3), else `name` itself.
fn full_name(name: &str) -> &str {
    match name {
        "v" | "V" => "Via",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        _ => name,
    }
}

impl Message {
    /// A request with no headers and no body.
    pub fn request(method: &str, uri: &str) -> Message {
        Message {
            start: StartLine::Request { method: method.into(), uri: uri.into() },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Parses one datagram.
    pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
        let end = datagram.windows(4).position(|w| w == b"\r\n\r\n").ok_or(ParseError::NoEndOfHeaders)?;
        let head = std::str::from_utf8(&datagram[..end]).map_err(|_| ParseError::NotUtf8)?;
        let rest = &datagram[end + 4..];
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let start = parse_start_line(first).ok_or_else(|| ParseError::StartLine(first.into()))?;
        let mut headers = Vec::new();
        let mut content_length = None;
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| ParseError::HeaderLine(line.into()))?;
            let (name, value) = (full_name(name.trim()), value.trim());
            if name.eq_ignore_ascii_case("Content-Length") {
                let length = value.parse::<usize>().map_err(|_| ParseError::ContentLength(value.into()))?;
                content_length = Some(length);
            } else {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        // Over UDP a missing Content-Length means the rest of the datagram (§18.3).
        let length = content_length.unwrap_or(rest.len());
        let body = rest.get(..length).ok_or_else(|| ParseError::ContentLength(length.to_string()))?.to_vec();
        Ok(Message { start, headers, body })
    }

    /// The message as sent: start line, headers, `Content-Length`, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        for (name, value) in &self.headers {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        let _ = write!(text, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Appends a header.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Message {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type`.
    pub fn with_body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Message {
        let mut message = self.with("Content-Type", content_type);
        message.body = body.into();
        message
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order (e.g. each `Via`).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The request's method, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The response's status code, `None` for a request.
    pub fn code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The request's Request-URI, `None` for a response.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The response's reason phrase, `None` for a request.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// `Call-ID`, or "" when missing.
    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    /// `CSeq` as (number, method).
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (number, method) = self.header("CSeq")?.split_once(' ')?;
        Some((number.trim().parse().ok()?, method.trim()))
    }

    /// The `tag` parameter of header `name` (`From` or `To`).
    pub fn tag(&self, name: &str) -> Option<&str> {
        param(self.header(name)?, "tag")
    }

    /// The response to this request with `code` and `reason` (RFC 3261 §8.2.6.2): every `Via`, `From`, `To`
    /// (with `to_tag` added when it has none), `Call-ID` and `CSeq` copied; no body.
    pub fn response(&self, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers: Vec<(String, String)> =
            self.header_values("Via").map(|via| ("Via".to_string(), via.to_string())).collect();
        for name in ["From", "To", "Call-ID", "CSeq"] {
            let mut value = self.header(name).unwrap_or_default().to_string();
            if let (true, Some(tag), None) = (name == "To", to_tag, self.tag("To")) {
                let _ = write!(value, ";tag={tag}");
            }
            headers.push((name.to_string(), value));
        }
        Message { start: StartLine::Response { code, reason: reason.into() }, headers, body: Vec::new() }
    }
}

fn parse_start_line(line: &str) -> Option<StartLine> {
    if let Some(status) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = status.split_once(' ').unwrap_or((status, ""));
        let code: u16 = code.parse().ok()?;
        return (100..=699).contains(&code).then(|| StartLine::Response { code, reason: reason.into() });
    }
    let mut words = line.split(' ');
    let (method, uri, version) = (words.next()?, words.next()?, words.next()?);
    let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic());
    (token && !uri.is_empty() && version == "SIP/2.0" && words.next().is_none())
        .then(|| StartLine::Request { method: method.into(), uri: uri.into() })
}

/// The value of parameter `name` in a header value's `;name=value` list (e.g. `tag`, `branch`).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (key, v) = p.split_once('=').unwrap_or((p, ""));
        key.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The URI in a name-addr (`"Name" <sip:u@h:p>;tag=x`) or addr-spec (`sip:u@h:p`) header value.
pub fn header_uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The host and port of a `sip:` URI with a numeric host (as user agents on loopback write their `Contact`);
/// port 5060 when it has none.
pub fn uri_host_port(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("sip:")?;
    let rest = rest.split(';').next()?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    host_port.parse().ok().or_else(|| format!("{host_port}:5060").parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INVITE: &str = "INVITE sip:b@127.0.0.1:5062 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK0\r\n\
        Contact: <sip:a-1@127.0.0.1:5060>\r\n\
        To: <sip:b@127.0.0.1:5062>\r\n\
        From: \"A\" <sip:a@127.0.0.1:5060>;tag=abc\r\n\
        Call-ID: call-1\r\n\
        CSeq: 7 INVITE\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\nextra";

    #[test]
    fn a_request_is_parsed_and_answered() {
        let invite = Message::parse(INVITE.as_bytes()).expect("parses");
        assert_eq!(invite.method(), Some("INVITE"));
        assert_eq!(invite.body, b"v=0\n", "Content-Length bytes of the body");
        assert_eq!(invite.cseq(), Some((7, "INVITE")));
        assert_eq!(invite.call_id(), "call-1");
        assert_eq!(invite.tag("From"), Some("abc"));
        assert_eq!(invite.tag("To"), None);
        assert_eq!(invite.header_values("via").count(), 2, "the compact form is read as Via");
        let contact = header_uri(invite.header("Contact").unwrap());
        assert_eq!(uri_host_port(contact), Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(header_uri(invite.header("From").unwrap()), "sip:a@127.0.0.1:5060");

        let ok = invite.response(200, "OK", Some("xyz"));
        let parsed = Message::parse(&ok.to_bytes()).expect("a response parses");
        assert_eq!(parsed, ok);
        assert_eq!(parsed.code(), Some(200));
        assert_eq!(parsed.tag("To"), Some("xyz"));
        assert_eq!(parsed.header_values("Via").count(), 2);
        assert_eq!(parsed.cseq(), Some((7, "INVITE")));
    }

    #[test]
    fn what_it_cannot_read_is_an_error() {
        assert_eq!(Message::parse(b"INVITE sip:x SIP/2.0\r\n"), Err(ParseError::NoEndOfHeaders));
        assert!(matches!(Message::parse(b"HELLO\r\n\r\n"), Err(ParseError::StartLine(_))));
        assert!(matches!(Message::parse(b"SIP/2.0 99 Low\r\n\r\n"), Err(ParseError::StartLine(_))));
        assert!(matches!(Message::parse(b"BYE sip:x SIP/2.0\r\nnocolon\r\n\r\n"), Err(ParseError::HeaderLine(_))));
        let long = b"BYE sip:x SIP/2.0\r\nContent-Length: 9\r\n\r\nshort";
        assert!(matches!(Message::parse(long), Err(ParseError::ContentLength(_))));
        assert_eq!(uri_host_port("sip:b@example.com"), None, "only numeric hosts");
        assert_eq!(uri_host_port("sip:127.0.0.1;lr"), Some("127.0.0.1:5060".parse().unwrap()));
    }

    proptest! {
        /// No input panics the parser.
        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::parse(&bytes);
        }

        /// What it builds, it parses back unchanged.
        #[test]
        fn built_messages_parse_back(
            method in "[A-Z]{3,9}",
            uri in "sip:[a-z]{1,8}@127\\.0\\.0\\.1:[0-9]{4}",
            headers in proptest::collection::vec(("[A-Z][a-z]{1,9}(-[A-Z][a-z]{1,5})?", "[!-~]([ -~]{0,30}[!-~])?"), 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let headers: Vec<(String, String)> = headers.into_iter()
                .filter(|(n, _)| n.len() > 1 && !n.eq_ignore_ascii_case("Content-Length"))
                .collect();
            let message = Message { start: StartLine::Request { method, uri }, headers, body };
            prop_assert_eq!(Message::parse(&message.to_bytes()), Ok(message));
        }
    }
}
