//! The cluster's members as the configuration gives them: node names and
//! the address at which this node reaches each (`NAME=HOST:PORT` in
//! `--cluster-node`, `WARREN_CLUSTER_NODE` and the TOML `cluster_nodes`;
//! `cluster_formation.classic_config.nodes.N = NAME` with
//! `cluster_formation.warren.addresses.NAME = HOST:PORT` in rabbitmq.conf).
//! Checked here, shared by every form; the server types the result.

/// The default inter-node port: RabbitMQ's distribution port.
pub const DEFAULT_PORT: u16 = 25672;

/// The name of the secret file in the data directory (RabbitMQ's
/// `.erlang.cookie`).
pub const SECRET_FILE: &str = ".cluster_secret";

/// A node name: `name@host`, both parts non-empty, no spaces, `=` or `,`
/// (RabbitMQ's classic config names nodes in full, `rabbit@host`).
pub fn node_name(name: &str) -> Result<(), String> {
    let ok = match name.split_once('@') {
        Some((n, h)) => {
            !n.is_empty()
                && !h.is_empty()
                && !h.contains('@')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid node name '{name}': expected NAME@HOST (letters, digits, '.', '_', '-')"
        ))
    }
}

/// `HOST:PORT`: a host name, an IPv4 address or a bracketed IPv6 address,
/// and a port from 1 to 65535. Returned as written (IPv6 normalised).
pub fn address(addr: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid address '{addr}': {why}"));
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("expected HOST:PORT");
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return bad("expected a port from 1 to 65535 after the last ':'"),
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
        {
            Some(ip) => Ok(format!("[{ip}]:{port}")),
            None => bad("expected an IPv6 address inside the brackets"),
        };
    }
    if host.contains(':') {
        return bad("an IPv6 address goes in brackets: [::1]:25672");
    }
    if host.is_empty()
        || host.starts_with(['-', '.'])
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return bad("expected a host name or an IP address before the port");
    }
    Ok(addr.to_string())
}

/// One `NAME=HOST:PORT`.
pub fn node(spec: &str) -> Result<(String, String), String> {
    let Some((name, addr)) = spec.split_once('=') else {
        return Err(format!(
            "invalid cluster node '{spec}': expected NAME=HOST:PORT (rabbit@a=10.0.0.1:25672)"
        ));
    };
    let (name, addr) = (name.trim(), addr.trim());
    node_name(name)?;
    Ok((name.to_string(), address(addr)?))
}

/// Every `NAME=HOST:PORT`, in order; a name given twice with the same
/// address counts once, with two addresses it is an error.
pub fn nodes(specs: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for spec in specs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (name, addr) = node(spec)?;
        match out.iter().find(|(n, _)| *n == name) {
            Some((_, a)) if *a == addr => {}
            Some((_, a)) => {
                return Err(format!(
                    "cluster node '{name}' is given two addresses: {a} and {addr}"
                ))
            }
            None => out.push((name, addr)),
        }
    }
    Ok(out)
}

/// RabbitMQ's names of the one peer discovery backend Warren has.
pub fn is_classic_config(backend: &str) -> bool {
    matches!(
        backend,
        "classic_config" | "rabbit_peer_discovery_classic_config"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs() {
        assert_eq!(
            node("rabbit@a=10.0.0.1:25672").unwrap(),
            ("rabbit@a".to_string(), "10.0.0.1:25672".to_string())
        );
        assert_eq!(
            node("n1@h.example.com=h-1.example.com:1").unwrap().1,
            "h-1.example.com:1"
        );
        assert_eq!(node("n@h=[::1]:25672").unwrap().1, "[::1]:25672");
        assert_eq!(
            node("n@h=[0:0::1]:25672").unwrap().1,
            "[::1]:25672",
            "IPv6 normalised, so the same address compares equal"
        );
        for bad in [
            "rabbit@a",
            "rabbit=10.0.0.1:1",
            "@a=h:1",
            "a@=h:1",
            "a@b@c=h:1",
            "a b@h=h:1",
            "a@h=h",
            "a@h=h:0",
            "a@h=h:65536",
            "a@h=:1",
            "a@h=::1:25672",
            "a@h=[nope]:1",
            "a@h=h/x:1",
            "a@h=-h:1",
        ] {
            assert!(node(bad).is_err(), "{bad}");
        }
        let e = node("a@h=h").unwrap_err();
        assert!(e.contains("invalid address 'h'"), "{e}");
        let e = node("justaname").unwrap_err();
        assert!(e.contains("expected NAME=HOST:PORT"), "{e}");
    }

    #[test]
    fn duplicates() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            nodes(&v(&["a@h=h:1", "b@h=h:2", "a@h=h:1"])).unwrap().len(),
            2
        );
        let e = nodes(&v(&["a@h=h:1", "a@h=h:2"])).unwrap_err();
        assert_eq!(e, "cluster node 'a@h' is given two addresses: h:1 and h:2");
        assert!(nodes(&[]).unwrap().is_empty());
    }
}
