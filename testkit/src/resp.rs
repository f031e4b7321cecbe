//! A minimal, blocking RESP2 client: enough for tests to ping and poke a server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::TestkitError;

/// A reply from the server, as RESP2 types it.
///
/// # Example
///
/// ```
/// use keel_testkit::{RedisServer, Reply};
///
/// let server = RedisServer::start()?;
/// assert_eq!(server.command(&["RPUSH", "list", "a", "b"])?, Reply::Integer(2));
/// assert_eq!(
///     server.command(&["LRANGE", "list", "0", "-1"])?,
///     Reply::Array(Some(vec![
///         Reply::Bulk(Some(b"a".to_vec())),
///         Reply::Bulk(Some(b"b".to_vec())),
///     ]))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings.
    Simple(String),
    /// `-ERR ...`: returned as a value, so a test can assert on it.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$n` bulk string; `None` for a nil reply.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for a nil array.
    Array(Option<Vec<Reply>>),
}

/// Sends one command on a fresh connection and reads its reply, with `timeout` on connect,
/// read and write so a paused server cannot hang the caller.
pub(crate) fn command(port: u16, args: &[&str], timeout: Duration) -> Result<Reply, TestkitError> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let context = || {
        format!(
            "sending {:?} to 127.0.0.1:{port}",
            args.first().unwrap_or(&"")
        )
    };
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| TestkitError::io(context(), e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| TestkitError::io(context(), e))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream)
        .write_all(&request)
        .map_err(|e| TestkitError::io(context(), e))?;
    let mut reader = BufReader::new(&stream);
    read_reply(&mut reader).map_err(|e| match e {
        ReadError::Io(source) => TestkitError::io(context(), source),
        ReadError::Protocol(message) => TestkitError::Protocol(message),
    })
}

enum ReadError {
    Io(std::io::Error),
    Protocol(String),
}

fn read_line(reader: &mut impl BufRead) -> Result<String, ReadError> {
    let mut line = String::new();
    let read = reader.read_line(&mut line).map_err(ReadError::Io)?;
    if read == 0 {
        return Err(ReadError::Protocol("connection closed mid-reply".into()));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn parse_len(text: &str) -> Result<i64, ReadError> {
    text.parse()
        .map_err(|_| ReadError::Protocol(format!("bad length `{text}`")))
}

fn read_reply(reader: &mut impl BufRead) -> Result<Reply, ReadError> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => parse_len(rest).map(Reply::Integer),
        "$" => {
            let len = parse_len(rest)?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut data = vec![0; len as usize + 2];
            reader.read_exact(&mut data).map_err(ReadError::Io)?;
            data.truncate(len as usize);
            Ok(Reply::Bulk(Some(data)))
        }
        "*" => {
            let len = parse_len(rest)?;
            if len < 0 {
                return Ok(Reply::Array(None));
            }
            let items = (0..len)
                .map(|_| read_reply(reader))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(ReadError::Protocol(format!(
            "unexpected reply line `{line}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Reply {
        match read_reply(&mut BufReader::new(bytes)) {
            Ok(reply) => reply,
            Err(ReadError::Protocol(message)) => panic!("protocol error: {message}"),
            Err(ReadError::Io(error)) => panic!("io error: {error}"),
        }
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+PONG\r\n"), Reply::Simple("PONG".into()));
        assert_eq!(parse(b"-ERR no\r\n"), Reply::Error("ERR no".into()));
        assert_eq!(parse(b":-3\r\n"), Reply::Integer(-3));
        assert_eq!(parse(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(parse(b"$2\r\nhi\r\n"), Reply::Bulk(Some(b"hi".to_vec())));
        assert_eq!(
            parse(b"*2\r\n:1\r\n$1\r\nx\r\n"),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Bulk(Some(b"x".to_vec()))
            ]))
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            read_reply(&mut BufReader::new(&b"?what\r\n"[..])),
            Err(ReadError::Protocol(_))
        ));
        assert!(matches!(
            read_reply(&mut BufReader::new(&b""[..])),
            Err(ReadError::Protocol(_))
        ));
    }
}
