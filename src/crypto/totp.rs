//! RFC 6238 TOTP with the parameters every authenticator app accepts:
//! 160-bit secret, SHA-1, 6 digits, 30-second steps, current step ± 1.

use secrecy::{ExposeSecret, SecretBox};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

pub const STEP_SECS: u64 = 30;
pub const DIGITS: u8 = 6;
pub const SECRET_LEN: usize = 20;

/// A TOTP seed: no `Debug`, zeroized on drop.
pub struct Seed(SecretBox<[u8; SECRET_LEN]>);

impl Seed {
    pub fn generate() -> Seed {
        let b = super::random_bytes::<SECRET_LEN>();
        Seed(SecretBox::new(Box::new(*b)))
    }

    pub fn from_bytes(b: &[u8]) -> Option<Seed> {
        let arr: [u8; SECRET_LEN] = b.try_into().ok()?;
        Some(Seed(SecretBox::new(Box::new(arr))))
    }

    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    fn totp(&self) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(1)
            .with_step_duration(STEP_SECS)
            .with_secret(Secret::from(self.0.expose_secret().as_slice()))
            .build()
            .expect("a 160-bit secret with SHA-1, 6 digits and 30 s steps is RFC 6238 compliant")
    }

    /// The `otpauth://` URI to show once, at enrolment. It contains the seed.
    /// Every parameter is explicit (some apps mis-handle defaults).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let secret = Zeroizing::new(Secret::from(self.0.expose_secret().as_slice()).to_base32());
        Zeroizing::new(format!(
            "otpauth://totp/{issuer_enc}:{account_enc}?secret={secret}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            issuer_enc = percent(issuer),
            account_enc = percent(account),
            secret = secret.as_str(),
        ))
    }

    /// The matched time step if `code` is valid at `unix_secs` (± 1 step).
    /// Anything that is not exactly six digits is refused without work.
    pub fn check(&self, code: &str, unix_secs: u64) -> Option<u64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp().check(code, unix_secs)
    }

    /// The code for a time; for tests and the known-answer vectors.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.totp().generate(unix_secs).to_string()
    }
}

/// A TOTP code a decision was made with: spent (the custodian's replay
/// guard is past its step), kept so that a release can re-verify it against
/// the seed. Its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SpentCode(String);

impl SpentCode {
    pub fn new(code: String) -> SpentCode {
        SpentCode(code)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SpentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpentCode(***)")
    }
}

impl Seed {
    /// Whether `code` is this seed's code for exactly `step` (no window):
    /// the re-verification of a decision at the step it was recorded with.
    /// Compared in constant time.
    pub fn verifies_at_step(&self, code: &str, step: u64) -> bool {
        use subtle::ConstantTimeEq;
        let Some(at) = step.checked_mul(STEP_SECS) else {
            return false;
        };
        let expected = self.code_at(at);
        code.len() == expected.len() && bool::from(code.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// The current code of a deposited TOTP seed (base32, as an authenticator
/// app or AWS shows it; at least 128 bits), for releasing the code instead
/// of the seed. `None` if it is not such a seed.
pub fn code_of_base32_seed(seed_b32: &str, unix_secs: u64) -> Option<Zeroizing<String>> {
    let cleaned = Zeroizing::new(
        seed_b32
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect::<String>(),
    );
    let secret = Secret::try_from_base32(cleaned.trim_end_matches('=')).ok()?;
    if secret.as_ref().len() < 16 {
        return None;
    }
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(0)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .build()
        .ok()?;
    Some(Zeroizing::new(totp.generate(unix_secs).to_string()))
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit codes truncated to 6 by
    /// the same dynamic truncation, so the last six digits match).
    #[test]
    fn rfc6238_sha1_vectors() {
        let seed = Seed::from_bytes(b"12345678901234567890").unwrap();
        for (t, code8) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(seed.code_at(t), code8[2..], "at {t}");
            assert_eq!(seed.check(&code8[2..], t), Some(t / 30));
        }
    }

    #[test]
    fn codes_from_the_neighbouring_steps_only_are_accepted() {
        let seed = Seed::from_bytes(b"12345678901234567890").unwrap();
        let t = 1_700_000_000u64;
        let code = seed.code_at(t);
        assert_eq!(seed.check(&code, t + 30), Some(t / 30));
        assert_eq!(seed.check(&code, t - 30), Some(t / 30));
        assert_eq!(seed.check(&code, t + 90), None);
        assert_eq!(seed.check("12345", t), None);
        assert_eq!(seed.check("12 345", t), None);
    }
}

#[cfg(test)]
mod uri_tests {
    use super::*;

    #[test]
    fn the_otpauth_uri_names_every_parameter_and_encodes_labels() {
        let seed = Seed::from_bytes(b"12345678901234567890").unwrap();
        let uri = seed.otpauth_uri("Acme Break Glass", "ann");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Acme%20Break%20Glass:ann?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Break%20Glass&algorithm=SHA1&digits=6&period=30"
        );
    }
}
