//! The listen address as people write it: `127.0.0.1:5052`, `[::1]:5052`, or `localhost:5052`,
//! which is taken as `127.0.0.1` (what `localhost` means to every client on this machine).

use std::net::{Ipv4Addr, SocketAddr};

pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let refuse = |why: &str| {
        format!(
            "{text:?} is not a listen address{why}; write an IP address and port, such as 127.0.0.1:5052 (this machine only) or 0.0.0.0:5052 (every interface)"
        )
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(refuse(": the port is missing"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| refuse(&format!(": {port:?} is not a port number")))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    Err(refuse(&format!(
        ": host names other than localhost are not resolved (use 127.0.0.1:{port}, or the address of the interface {host:?} names)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_is_loopback_and_other_names_are_refused_with_the_form() {
        assert_eq!(
            parse_listen("localhost:5053").unwrap(),
            "127.0.0.1:5053".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(parse_listen("[::1]:80").unwrap().port(), 80);
        let e = parse_listen("gpu-1:5053").unwrap_err();
        assert!(e.contains("127.0.0.1:5053"), "{e}");
        let e = parse_listen("5053").unwrap_err();
        assert!(
            e.contains("port is missing") && e.contains("127.0.0.1:5052"),
            "{e}"
        );
    }
}
