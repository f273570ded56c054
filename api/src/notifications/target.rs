//! Where a webhook may post: `http`/`https` URLs whose host is a public address, unless
//! `PARLEY_WEBHOOK_ALLOW_PRIVATE` allows loopback and private ones. Checked when a webhook is
//! registered, and again at every delivery by the HTTP client's resolver, so a name that later
//! resolves inside the network (DNS rebinding) is refused too. Redirects are not followed: a
//! public target could otherwise bounce a delivery to an inside address. Any port is allowed
//! (receivers often listen on 8080 or 8443).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use url::Host;

use crate::error::{ApiError, ApiResult};

/// Longest URL accepted.
const MAX_URL_CHARS: usize = 2_000;

/// Addresses a webhook may reach: globally routable ones. Not loopback, private,
/// link-local (cloud metadata lives there), shared (100.64/10), benchmarking (198.18/15),
/// reserved (240/4, 192.0.0/24), unspecified, broadcast, multicast or documentation ranges,
/// nor IPv6 unique-local, site-local or link-local; and an IPv4 address carried inside an
/// IPv6 one (mapped, compatible, NAT64, 6to4) is judged as that IPv4 address. Teredo is
/// refused outright.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [first, second, third, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || first == 0
                || first >= 240
                || (first == 100 && (second & 0xc0) == 64)
                || (first == 198 && (second & 0xfe) == 18)
                || (first == 192 && second == 0 && third == 0))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = |high: u16, low: u16| {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            if let Some(v4) = v6.to_ipv4() {
                // Mapped (::ffff:a.b.c.d) and compatible (::a.b.c.d); `::1` and `::` too.
                return !v6.is_loopback() && !v6.is_unspecified() && is_public(IpAddr::V4(v4));
            }
            match segments[0] {
                0x0064 if segments[1] == 0xff9b => embedded(segments[6], segments[7]), // NAT64
                0x2002 => embedded(segments[1], segments[2]),                          // 6to4
                0x2001 if segments[1] == 0 => false,                                   // Teredo
                first => {
                    !(v6.is_multicast()
                        || (first & 0xfe00) == 0xfc00 // unique local
                        || (first & 0xffc0) == 0xfe80 // link-local
                        || (first & 0xffc0) == 0xfec0) // site-local
                }
            }
        }
    }
}

/// A webhook URL as registered: well formed, `http(s)`, no credentials, and (unless private
/// targets are allowed) a host that resolves to public addresses only.
pub async fn check_url(raw: &str, allow_private: bool) -> ApiResult<Url> {
    let raw = raw.trim();
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(ApiError::bad_input("url: at most 2 000 characters"));
    }
    let url = Url::parse(raw).map_err(|err| ApiError::bad_input(format!("url: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::bad_input("url: only http and https targets"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::bad_input("url: credentials in the URL are not supported"));
    }
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| not_public())?
            .map(|address| address.ip())
            .collect(),
        None => return Err(ApiError::bad_input("url: a host is required")),
    };
    if addresses.is_empty() || !addresses.iter().copied().all(is_public) {
        return Err(not_public());
    }
    Ok(url)
}

/// One answer for a name that does not resolve and one that resolves inside the network, so
/// registering webhooks cannot be used to learn which internal names exist.
fn not_public() -> ApiError {
    ApiError::bad_input(
        "url: the host does not resolve to public addresses only (loopback, private and \
         link-local ones need PARLEY_WEBHOOK_ALLOW_PRIVATE=true)",
    )
}

/// True when a delivery to `url` may go out now: IP-literal hosts never reach the resolver,
/// so they are checked here.
pub fn literal_host_allowed(url: &Url, allow_private: bool) -> bool {
    allow_private
        || match url.host() {
            Some(Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => true,
            None => false,
        }
}

/// The client deliveries go out through. No proxy from the environment: a proxy would
/// resolve names itself, past the public-address rule.
pub fn client(allow_private: bool, attempt_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(attempt_timeout)
        .no_proxy()
        .redirect(Policy::none())
        .user_agent(concat!("Parley-Webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
    builder.build()
}

/// Resolves names to their public addresses only; a name with none fails the attempt.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_not_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(inside.parse().expect("an address")), "{inside}");
        }
        for outside in
            ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]
        {
            assert!(is_public(outside.parse().expect("an address")), "{outside}");
        }
    }

    #[tokio::test]
    async fn only_public_http_urls_are_registered() {
        for refused in [
            "ftp://example.com/x",
            "not a url",
            "http://user:pw@example.com/",
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest",
            "http://localhost/x",
        ] {
            assert!(check_url(refused, false).await.is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(check_url("https://93.184.216.34/hook", false).await.is_ok());
    }
}
