//! Debian's nginx in front of the nodes under test, terminating TLS, with
//! the configuration `server/README.md` gives ("Behind a proxy"); stopped
//! on drop.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// On a free port of 127.0.0.1, proxying to `upstreams` in turn.
    pub fn start(upstreams: &[SocketAddr], cert: &Path, key: &Path) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("uringws-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("tmp")).expect("a directory for nginx");
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server {u};\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/tmp;\n    proxy_temp_path {d}/tmp;\n\
             fastcgi_temp_path {d}/tmp;\n    uwsgi_temp_path {d}/tmp;\n    scgi_temp_path {d}/tmp;\n\
             {snippet}\n    upstream uringws {{\n{servers}    }}\n\
             server {{\n        listen {addr} ssl;\n        ssl_certificate {cert};\n        ssl_certificate_key {key};\n\
             location / {{\n{location}        }}\n    }}\n}}\n",
            snippet = MAP,
            location = LOCATION,
            cert = cert.display(),
            key = key.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx runs: the README's test command installs it (Debian's nginx)");
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < super::WAIT,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, addr, dir }
    }
}

/// The `http` part of the README's snippet.
const MAP: &str = "    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }";

/// The `location` part of the README's snippet.
const LOCATION: &str = "            proxy_pass http://uringws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
";

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master takes its workers with it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && started.elapsed() < super::WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
