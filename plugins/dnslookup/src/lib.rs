//! `ws dnslookup HOST`: resolves HOST with the system resolver (getaddrinfo, so
//! `/etc/hosts` and nsswitch apply, as for every client of `ws`) and logs one
//! `host: HOST ip: ADDRESS` line per address, IPv4 and IPv6, in the resolver's order.
//!
//! The reference logs a single, wrong address (its FIXME); this prints each distinct
//! address once. A name that does not resolve exits 1 with the resolver's reason.

use std::ffi::{CStr, OsString};
use std::net::{IpAddr, ToSocketAddrs};

use clap::Parser;
use ws_common::info;
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// DNS lookup
#[derive(Debug, Parser)]
#[command(name = "ws dnslookup", about = "Resolve a host name and print every address")]
struct Args {
    /// Host name (or address) to resolve
    host: String,
}

/// Every distinct address of `host`, in the resolver's order.
fn lookup(host: &str) -> std::io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in (host, 0).to_socket_addrs()? {
        if !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
    }
    Ok(ips)
}

#[derive(Debug, Default)]
struct DnsLookup;

impl Plugin for DnsLookup {
    const NAME: &'static CStr = c"dnslookup";
    const SUMMARY: &'static CStr = c"DNS lookup";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let host = args.host.trim_start_matches('[').trim_end_matches(']');
        let ips = lookup(host).map_err(|e| Error::failure(format!("cannot resolve {host}: {e}")))?;
        if ips.is_empty() {
            return Err(Error::failure(format!("cannot resolve {host}: no address")));
        }
        for ip in ips {
            info!("host: {host} ip: {ip}");
        }
        Ok(())
    }
}

declare_plugin!(DnsLookup);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_to_themselves() {
        assert_eq!(lookup("127.0.0.1").unwrap(), vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(lookup("::1").unwrap(), vec!["::1".parse::<IpAddr>().unwrap()]);
    }
}
