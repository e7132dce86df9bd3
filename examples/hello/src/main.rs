//! `theseus-hello`: the small HTTP service the quick start deploys, and the fetcher its client
//! uses, so that the examples need nothing from outside this repository.
//!
//! - `theseus-hello serve [--port-name http]` listens on `$HOST:$PORT_<NAME>` (Marathon's
//!   variables for a command app's named port), or on `--listen ADDRESS:PORT` (a container on
//!   a bridge network listens on its container port on every address), and answers every request with one JSON line
//!   saying which task answered: service, deployment, task id, labels, host and port.
//! - `theseus-hello fetch URL` makes one HTTP GET and prints the answer, so a shell loop in a
//!   task can call the servers it found with `theseus guest node-list`.
//!
//! It speaks just enough HTTP/1.1 (one request per connection) to stay dependency-free.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "theseus-hello", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP on $HOST:$PORT_<NAME>, answering with who this task is.
    Serve {
        /// The name of the port in the deployment's spec.
        #[arg(long, default_value = "http")]
        port_name: String,
        /// Listen here instead, e.g. `0.0.0.0:8080` inside a container.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// GET a URL and print the answer's body.
    Fetch {
        /// `http://host:port/path`.
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout_seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { port_name, listen } => serve(&port_name, listen),
        Command::Fetch {
            url,
            timeout_seconds,
        } => {
            let body = fetch(&url, Duration::from_secs(timeout_seconds))?;
            println!("{}", body.trim_end());
            Ok(())
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn serve(port_name: &str, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let (host, port) = match listen {
        Some(address) => (address.ip().to_string(), address.port()),
        None => {
            let variable = format!("PORT_{}", port_name.to_ascii_uppercase().replace('-', "_"));
            let port: u16 = std::env::var(&variable)
                .or_else(|_| std::env::var("PORT0"))
                .with_context(|| {
                    format!("neither {variable} nor PORT0 is set: run me as a Marathon task")
                })?
                .parse()
                .with_context(|| format!("{variable} is not a port number"))?;
            let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
            (host, port)
        }
    };
    let listener = TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("listen on {host}:{port}"))?;
    let answer = serde_json::json!({
        "service": env("SERVICE_NAME"),
        "deployment": env("DEPLOYMENT_NAME"),
        "task_id": env("MESOS_TASK_ID"),
        "labels": env("LABELS"),
        "host": host,
        "port": port,
    })
    .to_string();
    eprintln!(
        "theseus-hello {} listening on {host}:{port}",
        env("MESOS_TASK_ID")
    );
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(error) = answer_one(stream, &answer) {
                    eprintln!("theseus-hello: a request failed: {error}");
                }
            }
            Err(error) => eprintln!("theseus-hello: accept failed: {error}"),
        }
    }
    Ok(())
}

fn answer_one(stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    // Read the request head; the answer does not depend on it.
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    )?;
    stream.flush()
}

fn fetch(url: &str, timeout: Duration) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = authority
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{url}: {authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("{url}: cannot connect"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("{url}: reading the answer"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{url}: not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("{url}: {status}");
    }
    Ok(body.to_owned())
}
