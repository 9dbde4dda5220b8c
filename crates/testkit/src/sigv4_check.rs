//! An independent SigV4 verifier for the Bedrock stand-in: it recomputes a received request's
//! signature from its raw bytes with its own HMAC chain — not with the signer under test.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// URI-encodes every byte but the unreserved ones (and `/` when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b'~')
                || (keep_slash && b == b'/')
            {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical request: for services other than S3 the path as sent is encoded once more.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    signed: &[&str],
    body: &[u8],
) -> String {
    let path = if raw_path.is_empty() {
        "/".to_string()
    } else {
        encode(raw_path, true)
    };
    let mut query: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut canonical_headers = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{}",
        query.join("&"),
        signed.join(";"),
        hex(&Sha256::digest(body))
    )
}

pub fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    canonical: &str,
) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    hex(&hmac(&k, &to_sign))
}

/// Checks a received request; `Err` says what is wrong.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    access_key: &str,
    secret: &str,
    region: &str,
) -> Result<(), String> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let auth = get("authorization").ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .ok_or(format!("no {name} in Authorization"))
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let given = field("Signature")?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5
        || parts[0] != access_key
        || parts[2] != region
        || parts[3] != "bedrock"
        || parts[4] != "aws4_request"
    {
        return Err(format!("wrong credential scope {credential:?}"));
    }
    let amz_date = get("x-amz-date").ok_or("no X-Amz-Date")?;
    if !amz_date.starts_with(parts[1]) {
        return Err("X-Amz-Date does not match the scope date".into());
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err("host is not signed".into());
    }
    let canonical = canonical_request(method, raw_path, raw_query, headers, &signed, body);
    let want = signature(secret, parts[1], region, "bedrock", &amz_date, &canonical);
    if want == given {
        Ok(())
    } else {
        Err(format!(
            "signature mismatch; canonical request was:\n{canonical}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published SigV4 test-suite case `get-query-plus` (smithy-rs aws-signing-test-suite).
    #[test]
    fn matches_the_published_get_query_plus_vector() {
        let headers = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let canonical =
            canonical_request("GET", "/", "c+d", &headers, &["host", "x-amz-date"], b"");
        assert_eq!(
            canonical,
            "GET\n/\nc%2Bd=\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let sig = signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
            "20150830T123600Z",
            &canonical,
        );
        assert_eq!(
            sig,
            "ae684ce3aadc299e3ac7d9216fcc039c7edf40dea57cf5b3005821dd2f176654"
        );
    }

    #[test]
    fn colon_paths_are_encoded_once_more() {
        let c = canonical_request("POST", "/model/a%3A0/converse", "", &[], &[], b"");
        assert!(c.starts_with("POST\n/model/a%253A0/converse\n"), "{c}");
        let c = canonical_request("POST", "/model/a:0/converse", "", &[], &[], b"");
        assert!(c.starts_with("POST\n/model/a%3A0/converse\n"), "{c}");
    }
}
