//! An SMTP sink: a mail server of the test's own on a free port that records every message
//! with its envelope, so a test reads the emails a user would receive. It accepts them,
//! unless the test queued other answers to the end of `DATA` (a 451 "try later", a 550
//! refusal); a refused message is not recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One email as received.
#[derive(Clone, Debug)]
pub struct Email {
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent (headers and MIME body).
    pub raw: Vec<u8>,
}

impl Email {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(&self.raw).expect("a parseable email")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed().body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed().body_html(0).map(|t| t.into_owned()).unwrap_or_default()
    }

    /// A header's raw value, trimmed.
    pub fn header(&self, name: &str) -> String {
        let message = self.parsed();
        let value = message.header_raw(name).unwrap_or_default();
        value.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[derive(Default)]
struct Mailbox {
    received: Vec<Email>,
    /// Answers to the next messages' end of `DATA`, in order; 250 once none are left.
    answers: VecDeque<u16>,
}

pub struct SmtpSink {
    /// `smtp://127.0.0.1:PORT`, for `PARLEY_SMTP_URL`.
    pub url: String,
    mailbox: Arc<Mutex<Mailbox>>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let url = format!("smtp://{}", listener.local_addr().expect("an address"));
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let shared = mailbox.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, shared.clone()));
            }
        });
        SmtpSink { url, mailbox, server }
    }

    /// The next messages are answered with these codes (`451`, `550`, …), in order.
    pub fn answer_with(&self, codes: &[u16]) {
        self.mailbox.lock().expect("the mailbox").answers.extend(codes);
    }

    pub fn received(&self) -> Vec<Email> {
        self.mailbox.lock().expect("the mailbox").received.clone()
    }

    /// Waits until at least `n` emails came (panics after `wait`) and returns all of them.
    pub async fn wait_for(&self, n: usize, wait: Duration) -> Vec<Email> {
        super::at_least("emails", n, wait, || self.received()).await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One SMTP conversation (RFC 5321, the commands a client such as lettre sends).
async fn session(stream: TcpStream, mailbox: Arc<Mutex<Mailbox>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: Vec<u8> = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250 sink\r\n".to_vec()
        } else if command.starts_with("RCPT TO:") {
            to.push(line.trim_end()[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n".to_vec()
        } else if command == "DATA" {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut raw = Vec::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                // Dot-stuffing: a leading dot was doubled by the client.
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                raw.extend_from_slice(unstuffed.as_bytes());
            }
            let to = std::mem::take(&mut to);
            let mut mailbox = mailbox.lock().expect("the mailbox");
            let code = mailbox.answers.pop_front().unwrap_or(250);
            if code == 250 {
                mailbox.received.push(Email { to, raw });
            }
            format!("{code} {}\r\n", if code == 250 { "OK queued" } else { "not now" }).into_bytes()
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            // MAIL FROM, RSET, NOOP
            b"250 OK\r\n".to_vec()
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}
