//! The signature check under jsonwebtoken, on ring. With jsonwebtoken's RustCrypto backend
//! the check was ~2.3M instructions, four fifths of a GitLab code completion's cost in Hearth
//! (`num-bigint-dig` arithmetic); ring's assembly does it in ~0.4M and is already in the build
//! for TLS. GitLab signs a new token (its own `jti`) for each request it forwards, so a cache
//! of checked tokens would not help: the check is paid per keystroke.
//!
//! jsonwebtoken keeps the rest: splitting the token, the header, the claims and their checks
//! (`exp`, `nbf`, `aud`). Hearth only verifies RS256: every other algorithm, and signing, is
//! refused by this provider.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: no_components,
        rsa_pub_components_from_public_key: no_components,
        ec_pub_components_from_private_key: no_ec_components,
        ed_pub_components_from_private_key: no_ed_component,
        compute_digest: no_digest,
    },
};

/// Makes this jsonwebtoken's provider for the process. jsonwebtoken takes one provider per
/// process, fixed at its first use, so this runs before any token is read; later calls (a
/// second server in the same process) find it in place.
pub(crate) fn install() {
    let _ = PROVIDER.install_default();
}

/// An RSA public key as a JWK gives it: modulus and exponent, big-endian.
struct Rs256 {
    n: Vec<u8>,
    e: Vec<u8>,
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match (alg, key.kind()) {
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => Ok(Box::new(Rs256 {
            n: without_leading_zeros(n).to_vec(),
            e: without_leading_zeros(e).to_vec(),
        })),
        (Algorithm::RS256, DecodingKeyKind::SecretOrDer(_)) => {
            Err(ErrorKind::InvalidKeyFormat.into())
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// RFC 7518 writes `n` and `e` without leading zero bytes, but some issuers add one (a
/// sign byte); ring takes the minimal form only.
fn without_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        // ring refuses moduli under 2048 bits and public exponents that are even, under 3 or
        // over 2^33 − 1, and checks the PKCS #1 v1.5 padding and the SHA-256 digest.
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn no_components(_: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::InvalidKeyFormat.into())
}

fn no_ec_components(_: &[u8], _: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::InvalidKeyFormat.into())
}

fn no_ed_component(_: &[u8], _: &EllipticCurve) -> Result<Vec<u8>> {
    Err(ErrorKind::InvalidKeyFormat.into())
}

fn no_digest(_: &[u8], _: ThumbprintHash) -> Result<Vec<u8>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_testkit::{GITLAB_KEY, OTHER_KEY, mint};
    use jsonwebtoken::{Validation, decode};

    const N: &str = include_str!("../../../testkit/fixtures/gitlab-test-key.n");

    fn key() -> DecodingKey {
        DecodingKey::from_rsa_components(N.trim(), "AQAB").unwrap()
    }

    fn check(token: &str, key: &DecodingKey) -> Result<serde_json::Value> {
        install();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["gitlab-ai-gateway"]);
        decode::<serde_json::Value>(token, key, &validation).map(|t| t.claims)
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"aud": "gitlab-ai-gateway", "sub": "instance", "exp": 4_102_444_800u64})
    }

    fn kind(r: Result<serde_json::Value>) -> ErrorKind {
        r.map(|_| ()).unwrap_err().into_kind()
    }

    #[test]
    fn a_token_signed_with_the_key_is_accepted_and_no_other() {
        let token = mint(&claims(), "k1", GITLAB_KEY);
        assert_eq!(check(&token, &key()).unwrap()["sub"], "instance");

        let other = mint(&claims(), "k1", OTHER_KEY);
        assert_eq!(kind(check(&other, &key())), ErrorKind::InvalidSignature);

        // The same signature over other claims.
        let (head, rest) = token.split_once('.').unwrap();
        let signature = rest.rsplit_once('.').unwrap().1;
        let forged = mint(
            &serde_json::json!({"aud": "gitlab-ai-gateway", "sub": "admin", "exp": 4_102_444_800u64}),
            "k1",
            OTHER_KEY,
        );
        let forged_claims = forged.split('.').nth(1).unwrap();
        let spliced = format!("{head}.{forged_claims}.{signature}");
        assert_eq!(kind(check(&spliced, &key())), ErrorKind::InvalidSignature);

        // One bit of the signature changed.
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(kind(check(&flipped, &key())), ErrorKind::InvalidSignature);
    }

    #[test]
    fn claims_are_still_checked_after_the_signature() {
        let expired = serde_json::json!({"aud": "gitlab-ai-gateway", "exp": 1_000_000u64});
        let token = mint(&expired, "k1", GITLAB_KEY);
        assert_eq!(kind(check(&token, &key())), ErrorKind::ExpiredSignature);
        let elsewhere = serde_json::json!({"aud": "someone-else", "exp": 4_102_444_800u64});
        let token = mint(&elsewhere, "k1", GITLAB_KEY);
        assert_eq!(kind(check(&token, &key())), ErrorKind::InvalidAudience);
    }

    #[test]
    fn a_modulus_written_with_a_sign_byte_is_the_same_key() {
        use base64::Engine;
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(N.trim())
            .unwrap();
        let padded = [&[0u8][..], &n].concat();
        let key = DecodingKey::from_rsa_raw_components(&padded, &[1, 0, 1]);
        let token = mint(&claims(), "k1", GITLAB_KEY);
        assert!(check(&token, &key).is_ok());
    }

    #[test]
    fn only_rs256_on_an_rsa_key_gets_a_verifier() {
        install();
        for alg in [
            Algorithm::HS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(verifier(&alg, &key()).is_err(), "{alg:?}");
        }
        let secret = DecodingKey::from_secret(b"a shared secret");
        assert!(verifier(&Algorithm::RS256, &secret).is_err());
        assert!(verifier(&Algorithm::RS256, &key()).is_ok());
        assert!(no_signer(&Algorithm::RS256, &EncodingKey::from_secret(b"s")).is_err());
    }
}
