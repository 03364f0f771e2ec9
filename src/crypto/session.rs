//! The console's session secret: 32 random bytes the browser keeps in an
//! `__Host-` cookie. The database keeps only the secret's SHA-256, and the
//! per-session form token is derived from the secret, so neither a reader
//! of the database nor a page on another site can sign in or forge a form.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The cookie's name. `__Host-`: the browser keeps it only when it is
/// `Secure`, has `Path=/` and no `Domain`, so no sibling host can set it.
pub const COOKIE: &str = "__Host-bg_session";

/// What the form token is derived for; a new use gets a new label.
const FORM_LABEL: &[u8] = b"breakglass console form token v1";

/// The length of a secret in its cookie form (32 bytes, base64url).
const ENCODED_LEN: usize = 43;

/// A session's secret. `Debug` shows nothing of it.
#[derive(Debug)]
pub struct SessionSecret(SecretString);

impl SessionSecret {
    pub fn generate() -> SessionSecret {
        let bytes = super::random_bytes::<32>();
        SessionSecret(URL_SAFE_NO_PAD.encode(&bytes[..]).into())
    }

    /// The secret of our cookie in a `Cookie` request header, if there is
    /// exactly one well-formed one (a second cookie of the same name, which
    /// a sibling host could plant, makes the header refused).
    pub fn from_cookie_header(header: &str) -> Option<SessionSecret> {
        one_cookie(header, COOKIE).and_then(SessionSecret::parse)
    }

    /// A secret as a link or form carries it, if well-formed.
    pub fn parse(value: &str) -> Option<SessionSecret> {
        well_formed(value).then(|| SessionSecret(value.to_owned().into()))
    }

    /// The secret itself, for the one place it goes: the cookie, or the
    /// sign-in link printed once on the host.
    pub fn reveal(&self) -> &str {
        self.0.expose_secret()
    }

    /// The key of the session's row: SHA-256 of the secret, in hex.
    pub fn id_hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.expose_secret().as_bytes()))
    }

    /// The `Set-Cookie` value that gives the browser this session for at
    /// most `max_age_secs`.
    pub fn set_cookie(&self, max_age_secs: i64) -> String {
        format!(
            "{COOKIE}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
            self.0.expose_secret(),
            max_age_secs.max(0)
        )
    }

    /// The token every form of this session carries.
    pub fn form_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.tag().as_ref())
    }

    /// Whether `given` is this session's form token, compared in constant
    /// time.
    pub fn form_token_matches(&self, given: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        hmac::verify(&self.key(), FORM_LABEL, &given).is_ok()
    }

    /// A value derived from this secret for `label` (base64url of
    /// HMAC-SHA256): an OIDC sign-in's PKCE verifier and nonce come from
    /// the browser's cookie this way, so the database holds neither.
    pub fn derive(&self, label: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key(), label.as_bytes()).as_ref())
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.0.expose_secret().as_bytes())
    }

    fn tag(&self) -> hmac::Tag {
        hmac::sign(&self.key(), FORM_LABEL)
    }
}

/// The cookie that binds an OIDC sign-in to the browser that started it.
/// `SameSite=Lax`: the provider's redirect back is a cross-site navigation,
/// which a strict cookie would not follow.
pub const LOGIN_COOKIE: &str = "__Host-bg_login";

impl SessionSecret {
    /// The secret of the login cookie in a `Cookie` header, if exactly one.
    pub fn login_from_cookie_header(header: &str) -> Option<SessionSecret> {
        one_cookie(header, LOGIN_COOKIE).and_then(SessionSecret::parse)
    }

    /// The `Set-Cookie` of a sign-in's binder, for `max_age_secs`.
    pub fn set_login_cookie(&self, max_age_secs: i64) -> String {
        format!(
            "{LOGIN_COOKIE}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            self.0.expose_secret(),
            max_age_secs.max(0)
        )
    }
}

/// The `Set-Cookie` value that makes the browser forget a sign-in's binder.
pub fn clear_login_cookie() -> String {
    format!("{LOGIN_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax")
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

/// The value of the cookie `name` in a `Cookie` header, if it is there
/// exactly once.
fn one_cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    let mut found = header.split(';').filter_map(|pair| {
        let (n, value) = pair.trim().split_once('=')?;
        (n == name).then_some(value)
    });
    let value = found.next()?;
    found.next().is_none().then_some(value)
}

fn well_formed(value: &str) -> bool {
    value.len() == ENCODED_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_value(set_cookie: &str) -> &str {
        set_cookie
            .strip_prefix("__Host-bg_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
    }

    #[test]
    fn a_secret_reads_back_from_its_cookie_and_hashes_the_same() {
        let s = SessionSecret::generate();
        let set = s.set_cookie(86_400);
        assert!(set.ends_with("; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Strict"));
        let header = format!("theme=dark; {COOKIE}={}; other=1", cookie_value(&set));
        let back = SessionSecret::from_cookie_header(&header).unwrap();
        assert_eq!(back.id_hash(), s.id_hash());
        assert_eq!(s.id_hash().len(), 64);
        assert_ne!(SessionSecret::generate().id_hash(), s.id_hash());
    }

    #[test]
    fn a_missing_doubled_or_malformed_cookie_is_no_session() {
        let s = SessionSecret::generate();
        let v = s.set_cookie(1);
        let v = cookie_value(&v);
        for header in [
            String::new(),
            "theme=dark".into(),
            format!("{COOKIE}={v}; {COOKIE}={v}"),
            format!("{COOKIE}={}", &v[1..]),
            format!("{COOKIE}={}!", &v[1..]),
            format!("bg_session={v}"),
        ] {
            assert!(
                SessionSecret::from_cookie_header(&header).is_none(),
                "{header}"
            );
        }
    }

    #[test]
    fn the_form_token_is_the_sessions_own_and_the_secret_never_shows() {
        let s = SessionSecret::generate();
        let other = SessionSecret::generate();
        assert!(s.form_token_matches(&s.form_token()));
        assert!(!s.form_token_matches(&other.form_token()));
        assert!(!s.form_token_matches(""));
        assert!(!s.form_token_matches("not base64 !"));
        let set = s.set_cookie(1);
        let secret = cookie_value(&set);
        assert!(!format!("{s:?}").contains(secret));
        assert!(!s.form_token().contains(secret) && !s.id_hash().contains(secret));
        assert_eq!(
            clear_cookie(),
            format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
        );
    }
}
