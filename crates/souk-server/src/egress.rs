//! Calls out to sellers: where they may go, and how much of an answer souk reads.
//!
//! A seller endpoint's host is resolved when souk calls it, and every address is checked against
//! the allowed networks ([`souk_core::net`]): loopback, private, link-local, CGNAT, multicast and
//! cloud-metadata addresses are refused unless an operator allows them. The HTTP client resolves
//! names only through [`GuardedResolver`], so it connects to checked addresses only: a name that
//! answered a public address to the check and a private one to the connection (DNS rebinding)
//! still cannot reach the private one.

use souk_core::net::{url_host, Host, SellerNetworks};
use std::net::SocketAddr;

/// The HTTP client's resolver: the system's, minus refused addresses.
pub struct GuardedResolver {
    pub networks: SellerNetworks,
}

/// Every address a name resolved to is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let networks = self.networks.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused): (Vec<_>, Vec<_>) = found
                .into_iter()
                .partition(|a| networks.check(a.ip()).is_ok());
            if allowed.is_empty() {
                let why = refused
                    .first()
                    .and_then(|a| networks.check(a.ip()).err())
                    .unwrap_or_else(|| format!("{host} did not resolve"));
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Why souk will not call `endpoint` at all (a final failure), or `None` when it may try. A
/// name that does not resolve now is not refused: DNS may be down, and the call is retried.
pub async fn refused(networks: &SellerNetworks, endpoint: &str) -> Option<String> {
    let why = |reason: String| Some(format!("refused to call the seller: {reason}"));
    match url_host(endpoint) {
        None => why("the endpoint has no host".into()),
        Some(Host::Ip(ip)) => networks.check(ip).err().and_then(why),
        Some(Host::Name(name)) => {
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(found) => found.collect(),
                Err(_) => return None,
            };
            if found.is_empty() || found.iter().any(|a| networks.check(a.ip()).is_ok()) {
                return None;
            }
            found
                .first()
                .and_then(|a| networks.check(a.ip()).err())
                .map(|reason| format!("refused to call the seller: {name} resolves to {reason}"))
        }
    }
}

/// Reads at most `limit` bytes of an answer, chunk by chunk; a longer answer is an error and the
/// rest is never read.
pub async fn read_limited(mut res: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let too_long = || format!("the answer is longer than {limit} bytes");
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| describe(e, "reading the answer"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error for people, without the URL: a seller call's URL carries its signature.
pub fn describe(e: reqwest::Error, doing: &str) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let e = e.without_url();
    let mut text = format!("{doing} failed: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
