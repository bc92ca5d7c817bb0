//! Input checks shared by every entry point, each naming the field at fault.

use crate::Error;

/// A trimmed, non-empty text of at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    optional_text(field, v, max)
}

/// A non-empty single line of at most `max` characters: a name, a title (a line break there would
/// be a line of its own in an e-mail's subject or a page's heading).
pub fn line(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let v = text(field, value, max)?;
    if v.contains(['\n', '\r']) {
        return Err(Error::invalid(field, "must be one line"));
    }
    Ok(v)
}

/// A trimmed text (possibly empty) of at most `max` characters, without control characters
/// other than line breaks and tabs.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let v = value.trim();
    if v.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    // Direction overrides make a name read differently from what it is (spoofing).
    if v.chars()
        .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(Error::invalid(
            field,
            "must not contain text-direction override characters",
        ));
    }
    Ok(v.to_owned())
}

/// An e-mail address, lower-cased; deliberately simple: one `@`, a dot in the domain, no spaces.
pub fn email(field: &str, value: &str) -> Result<String, Error> {
    let v = value.trim().to_lowercase();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(v)
    } else {
        Err(Error::invalid(
            field,
            "must be an e-mail address such as name@example.com",
        ))
    }
}

/// A password good enough to keep: 10 to 128 characters.
pub fn password(field: &str, value: &str) -> Result<(), Error> {
    let n = value.chars().count();
    if !(10..=128).contains(&n) {
        return Err(Error::invalid(field, "must be 10 to 128 characters"));
    }
    Ok(())
}

/// An absolute http(s) URL; `loopback_http` allows plain HTTP to literal 127.0.0.0/8 and ::1.
pub fn url(
    field: &str,
    value: &str,
    require_https: bool,
    loopback_http: bool,
) -> Result<String, Error> {
    let v = value.trim();
    let (scheme, rest) = v.split_once("://").ok_or_else(|| {
        Error::invalid(
            field,
            "must be an absolute URL such as https://example.com/path",
        )
    })?;
    let host_port = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or_default()
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    // A backslash ends the host for HTTP clients (as `/` does) but not for every reader of a
    // URL; refusing it leaves one reading of where a URL points.
    if host.is_empty()
        || v.len() > 2000
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        || host_port.contains('@')
    {
        return Err(Error::invalid(
            field,
            "must be an absolute URL with a host and no credentials",
        ));
    }
    // Only a literal loopback address counts: a name such as `127.attacker.example` may resolve
    // anywhere, and names are checked when souk calls them.
    let loopback = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(v.to_owned()),
        "http" if !require_https => Ok(v.to_owned()),
        "http" if loopback_http && loopback => Ok(v.to_owned()),
        "http" => Err(Error::invalid(field, "must use https")),
        _ => Err(Error::invalid(field, "must be an http or https URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_field() {
        assert!(
            matches!(text("name", "  ", 10), Err(Error::Invalid { field, .. }) if field == "name")
        );
        assert_eq!(text("name", " Ada ", 10).unwrap(), "Ada");
        assert!(text("name", "x\u{0}y", 10).is_err());
        assert!(line("name", "Evil\r\nBcc: victim@evil.example", 100).is_err());
        assert_eq!(line("name", " Acme Notes ", 100).unwrap(), "Acme Notes");
        assert!(text("name", &"x".repeat(11), 10).is_err());
        assert_eq!(
            email("email", "Ada@Example.COM").unwrap(),
            "ada@example.com"
        );
        for bad in ["ada", "ada@", "@x.com", "a@b", "a b@c.d", "a@@b.c"] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
        assert!(password("password", "short").is_err());
    }

    #[test]
    fn endpoint_urls_need_https_except_loopback_when_allowed() {
        assert!(url("u", "https://seller.example.com/souk", true, false).is_ok());
        assert!(url("u", "http://seller.example.com/souk", true, true).is_err());
        assert!(url("u", "http://127.0.0.1:9000/souk", true, true).is_ok());
        assert!(url("u", "http://127.0.0.1:9000/souk", true, false).is_err());
        assert!(url("u", "http://[::1]:9000/", true, true).is_ok());
        assert!(url("u", "http://127.attacker.example/souk", true, true).is_err());
        assert!(url("u", "http://localhost:9000/souk", true, true).is_err());
        assert!(url("u", "ftp://x.com", false, false).is_err());
        assert!(url("u", "https://user:pw@x.com", true, false).is_err());
        assert!(url("u", "not a url", false, false).is_err());
        // HTTP clients end the host at a backslash: `127.0.0.2:18443` here, not a public name.
        assert!(url("u", "https://127.0.0.2:18443\\:x", true, false).is_err());
        assert!(url("u", "https://seller.example.com\\@127.0.0.1/", true, false).is_err());
    }
}
