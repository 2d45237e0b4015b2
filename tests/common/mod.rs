//! Shared by the daemon's test suites (api, api_auth, sdk): starts the real `stepgate serve`
//! over a folder of its own (`workflows/` in it, `state/` made by it) on a free loopback port,
//! and speaks raw HTTP to it for what no client would send.

#![allow(dead_code)] // each suite uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Daemon {
    pub child: Child,
    /// Where to call it: loopback even when it listens on every interface.
    pub addr: String,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts the daemon over `dir` with `config` after the storage and workflows keys (it may
    /// hold a `[server]` table; without one the daemon listens on 127.0.0.1:0).
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        std::fs::create_dir_all(dir.join("workflows")).unwrap();
        let server = if config.contains("[server]") { "" } else { "[server]\nlisten = \"127.0.0.1:0\"\n" };
        let file = dir.join("stepgate.toml");
        std::fs::write(
            &file,
            format!(
                "{server}[storage]\nstate_dir = \"{}\"\n[workflows]\ndir = \"{}\"\n{config}",
                dir.join("state").display(),
                dir.join("workflows").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(["serve", "--config"])
            .arg(&file)
            .env("STEPGATE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the stepgate binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let bound = line
            .trim()
            .strip_prefix("stepgate listening on ")
            .unwrap_or_else(|| panic!("the daemon did not start: {line:?}"));
        let addr = bound.replace("0.0.0.0:", "127.0.0.1:");
        Daemon { child, addr, dir: dir.to_path_buf() }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A raw HTTP request; the status and the body text.
    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status: u16 = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("").to_string();
        (status, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
