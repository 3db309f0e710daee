//! `AWSCredentials`: SigV4 over the final upstream request (after translation and body
//! mutations), with the `aws-sigv4` crate.
//!
//! Signed: `host` (the `:authority` Envoy sends upstream), `content-type`, `x-amz-date`,
//! `x-amz-content-sha256` and, with a session token, `x-amz-security-token`. Nothing Envoy may
//! still change (`content-length`, tracing headers) is signed. Errors never carry the keys.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use crate::config::AwsCredential;

/// Headers (lower-case name, value) that sign `POST https://{host}{path}` with `headers` and
/// `body` for `service` at `time`: `authorization`, `x-amz-date`, `x-amz-content-sha256` and
/// `x-amz-security-token` when the credential has a session token.
pub fn sign_request(
    credential: &AwsCredential,
    service: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = aws_credential_types::Credentials::new(
        credential.access_key_id.clone(),
        credential.secret_access_key.clone(),
        credential.session_token.clone(),
        None,
        "infergate",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&credential.region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let mut signed: Vec<(&str, &str)> = vec![("host", host)];
    signed.extend(headers.iter().copied());
    let request = SignableRequest::new(
        "POST",
        format!("https://{host}{path}"),
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("SigV4 signing: {e}"))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_ascii_lowercase(), h.value().to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(token: Option<&str>) -> AwsCredential {
        AwsCredential {
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn signs_host_content_type_date_and_payload_hash() {
        // 2015-08-30T12:36:00Z, the SigV4 test suite's date.
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sign_request(
            &credential(None),
            "bedrock",
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/amazon.nova-pro-v1%3A0/converse",
            &[("content-type", "application/json")],
            b"{}",
            time,
        )
        .expect("sign");
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&headers, "x-amz-content-sha256"),
            Some("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        );
        let auth = header(&headers, "authorization").expect("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert!(!auth.contains("wJalr"));
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    #[test]
    fn a_session_token_is_sent_and_signed() {
        let headers = sign_request(
            &credential(Some("session-token")),
            "bedrock",
            "h",
            "/",
            &[],
            b"",
            SystemTime::now(),
        )
        .expect("sign");
        assert_eq!(
            header(&headers, "x-amz-security-token"),
            Some("session-token")
        );
        let auth = header(&headers, "authorization").expect("authorization");
        assert!(auth.contains("x-amz-security-token"), "{auth}");
    }
}
