//! Who is on the other end of a request: the client's address (the TCP peer, or what a trusted
//! proxy forwarded) and whether the client reached souk over https.

use crate::SharedState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The client of a request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address: the TCP peer unless that is a trusted proxy, whose
    /// `X-Forwarded-For` then names the client.
    pub ip: IpAddr,
    /// The client reached souk over https (the public URL is https, the session cookie is
    /// configured `Secure`, or a trusted proxy said `X-Forwarded-Proto: https`).
    pub https: bool,
}

impl Peer {
    /// The client of a request with these headers from the TCP peer `tcp` (`None` when the
    /// server was not started with connection info, e.g. in unit tests).
    pub fn of(state: &SharedState, headers: &HeaderMap, tcp: Option<IpAddr>) -> Peer {
        let settings = &state.settings;
        let tcp = tcp.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let trusted = |ip: &IpAddr| settings.trusted_proxies.iter().any(|n| n.contains(ip));
        let via_proxy = trusted(&tcp);
        let ip = if via_proxy {
            // Rightmost first: each trusted proxy appends the address it saw; the first
            // untrusted one from the right is the client (left entries are the client's word).
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .find(|ip| !trusted(ip))
                .unwrap_or(tcp)
        } else {
            tcp
        };
        let forwarded_https = via_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        let public_https = settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        Peer {
            ip,
            https: settings.cookie_secure || public_https || forwarded_https,
        }
    }
}

impl FromRequestParts<SharedState> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Infallible> {
        let tcp = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Peer::of(state, &parts.headers, tcp))
    }
}
