//! CDN facts (provider, cache status, edge location) read from response headers.

use serde::{Deserialize, Serialize};

/// CDN facts derived from response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdnInfo {
    pub provider: Option<String>,
    pub cache_status: Option<String>,
    pub edge_location: Option<String>,
}

/// Detect CDN provider, cache status and edge location from response headers
/// (names must be lower-case).
pub fn detect_cdn(headers: &[(String, String)]) -> Option<CdnInfo> {
    let get = |name: &str| -> Option<&str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let server = get("server").unwrap_or("").to_ascii_lowercase();
    let via = get("via").unwrap_or("").to_ascii_lowercase();
    let x_cache = get("x-cache").map(str::to_string);
    let mut info = CdnInfo::default();

    if let Some(ray) = get("cf-ray") {
        info.provider = Some("Cloudflare".into());
        info.edge_location = ray.rsplit_once('-').map(|(_, loc)| loc.to_string()).filter(|l| !l.is_empty());
        info.cache_status = get("cf-cache-status").map(str::to_string);
    } else if server == "cloudflare" {
        info.provider = Some("Cloudflare".into());
        info.cache_status = get("cf-cache-status").map(str::to_string);
    } else if get("x-amz-cf-id").is_some() || get("x-amz-cf-pop").is_some() || via.contains("cloudfront") {
        info.provider = Some("CloudFront".into());
        info.edge_location = get("x-amz-cf-pop").map(str::to_string);
        info.cache_status = x_cache.clone();
    } else if let Some(vid) = get("x-vercel-id") {
        info.provider = Some("Vercel".into());
        info.edge_location = vid.split("::").next().map(str::to_string);
        info.cache_status = get("x-vercel-cache").map(str::to_string);
    } else if get("x-fastly-request-id").is_some()
        || get("fastly-debug-digest").is_some()
        || get("x-served-by").is_some_and(|v| v.contains("cache-"))
    {
        info.provider = Some("Fastly".into());
        // x-served-by: "cache-fra-eddf8230045-FRA[, cache-...-XYZ]" -> last POP wins
        info.edge_location = get("x-served-by")
            .and_then(|v| v.split(',').next_back())
            .and_then(|v| v.trim().rsplit_once('-'))
            .map(|(_, loc)| loc.to_string());
        info.cache_status = x_cache.clone();
    } else if server.contains("akamai")
        || get("x-akamai-transformed").is_some()
        || get("akamai-grn").is_some()
        || get("akamai-cache-status").is_some()
    {
        info.provider = Some("Akamai".into());
        info.cache_status = get("akamai-cache-status").map(str::to_string).or(x_cache.clone());
    } else if get("x-azure-ref").is_some() || get("x-msedge-ref").is_some() {
        info.provider = Some("Azure Front Door".into());
        info.cache_status = x_cache.clone();
    } else if server.starts_with("bunnycdn") {
        info.provider = Some("BunnyCDN".into());
        info.edge_location = server.split_once('-').map(|(_, l)| l.to_ascii_uppercase());
        info.cache_status = get("cdn-cache").map(str::to_string);
    } else if get("x-nf-request-id").is_some() || server == "netlify" {
        info.provider = Some("Netlify".into());
        info.cache_status = get("cache-status").map(str::to_string);
    } else if server == "gws" || server == "google frontend" || via.contains("google") {
        info.provider = Some("Google".into());
    } else if via.contains("varnish") {
        info.provider = Some("Varnish".into());
        info.cache_status = x_cache.clone();
    }

    if info.cache_status.is_none() {
        info.cache_status = x_cache
            .or_else(|| get("x-cache-status").map(str::to_string))
            .or_else(|| get("cdn-cache-status").map(str::to_string))
            .or_else(|| get("cache-status").map(str::to_string));
    }
    if info == CdnInfo::default() {
        None
    } else {
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_detection() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        let cf =
            detect_cdn(&h(&[("server", "cloudflare"), ("cf-ray", "8a1b2c3d4e5f6789-FRA"), ("cf-cache-status", "HIT")]))
                .unwrap();
        assert_eq!(cf.provider.as_deref(), Some("Cloudflare"));
        assert_eq!(cf.edge_location.as_deref(), Some("FRA"));
        assert_eq!(cf.cache_status.as_deref(), Some("HIT"));
        let cfr =
            detect_cdn(&h(&[("x-amz-cf-id", "abc"), ("x-amz-cf-pop", "FRA56-P1"), ("x-cache", "Hit from cloudfront")]))
                .unwrap();
        assert_eq!(cfr.provider.as_deref(), Some("CloudFront"));
        assert_eq!(cfr.edge_location.as_deref(), Some("FRA56-P1"));
        assert_eq!(cfr.cache_status.as_deref(), Some("Hit from cloudfront"));
        let fastly =
            detect_cdn(&h(&[("x-served-by", "cache-fra-eddf8230045-FRA, cache-ams21-AMS"), ("x-cache", "MISS, HIT")]))
                .unwrap();
        assert_eq!(fastly.provider.as_deref(), Some("Fastly"));
        assert_eq!(fastly.edge_location.as_deref(), Some("AMS"));
        assert_eq!(detect_cdn(&h(&[("server", "nginx")])), None);
        let generic = detect_cdn(&h(&[("x-cache", "HIT")])).unwrap();
        assert_eq!(generic.provider, None);
        assert_eq!(generic.cache_status.as_deref(), Some("HIT"));
    }
}
