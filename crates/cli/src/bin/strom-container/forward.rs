//! Loopback port forwards (`STROM_FORWARD="9093=broker2:9093,9094=broker3:9094"`).
//!
//! The broker serves one listener, so it advertises one address to everybody. In the compose
//! cluster that address is `localhost:909N`: right for clients on the host (the port is
//! published), and made right inside the network by these forwards — in every broker
//! container, `localhost:<peer's port>` leads to that peer. A forward is a plain byte pipe;
//! when the peer is unreachable (stopped, cut off the network) the client's connection is
//! closed at once, as a refused connection would be.

use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("STROM_FORWARD entry \"{entry}\": {message}")]
    Bad { entry: String, message: String },
    #[error("STROM_FORWARD: cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

/// One `localPort=host:port` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub local_port: u16,
    pub target: String,
}

/// Parses `localPort=host:port` entries separated by commas or spaces.
pub fn parse(spec: &str) -> Result<Vec<Forward>, ForwardError> {
    let mut out = Vec::new();
    for entry in spec.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |message: &str| ForwardError::Bad { entry: entry.to_string(), message: message.to_string() };
        let (port, target) = entry.split_once('=').ok_or_else(|| bad("expected localPort=host:port"))?;
        let local_port = port.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("bad local port"))?;
        let (host, tport) = target.rsplit_once(':').ok_or_else(|| bad("target needs host:port"))?;
        if host.is_empty() || tport.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("target needs host:port"));
        }
        out.push(Forward { local_port, target: target.to_string() });
    }
    Ok(out)
}

/// Binds every forward on 127.0.0.1 and serves them until `stop` turns true.
pub async fn start(forwards: &[Forward], stop: watch::Receiver<bool>) -> Result<Vec<JoinHandle<()>>, ForwardError> {
    let mut tasks = Vec::new();
    for f in forwards {
        let listener = TcpListener::bind(("127.0.0.1", f.local_port))
            .await
            .map_err(|source| ForwardError::Bind { port: f.local_port, source })?;
        tracing::info!(local = f.local_port, target = %f.target, "forwarding loopback port");
        tasks.push(tokio::spawn(serve(listener, f.target.clone(), stop.clone())));
    }
    Ok(tasks)
}

async fn serve(listener: TcpListener, target: String, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((client, _)) => {
                tokio::spawn(pipe(client, target.clone(), stop.clone()));
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "forward accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn pipe(mut client: TcpStream, target: String, mut stop: watch::Receiver<bool>) {
    // Resolved per connection: a restarted peer container comes back with a new address.
    let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target));
    let mut upstream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%target, error = %e, "forward target unreachable");
            return;
        }
        Err(_) => {
            tracing::debug!(%target, "forward target timed out");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        r = copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(%target, error = %e, "forwarded connection ended");
            }
        }
        _ = stop.wait_for(|s| *s) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_entries() {
        let f = parse("9093=broker2:9093, 9094=broker3:9094").unwrap();
        assert_eq!(
            f,
            vec![
                Forward { local_port: 9093, target: "broker2:9093".into() },
                Forward { local_port: 9094, target: "broker3:9094".into() },
            ]
        );
        assert!(parse("").unwrap().is_empty());
        for bad in ["9093", "x=b:1", "0=b:1", "9093=b", "9093=:1", "9093=b:0"] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[tokio::test]
    async fn pipes_bytes_both_ways_and_closes_when_target_is_gone() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        // Ask the OS for a free port for the forward's own listener.
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let dead_port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let (stop_tx, stop) = watch::channel(false);
        let forwards = vec![
            Forward { local_port: port, target: echo_addr.to_string() },
            Forward { local_port: dead_port, target: dead_addr.to_string() },
        ];
        let tasks = start(&forwards, stop).await.unwrap();

        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf, b"ping");

        let mut d = TcpStream::connect(("127.0.0.1", dead_port)).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), d.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "a forward to a closed port must close the client");

        stop_tx.send_replace(true);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t).await.unwrap().unwrap();
        }
    }
}
