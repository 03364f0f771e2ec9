//! The only room that touches key bytes: envelopes, TOTP, the audit chain,
//! Shamir shares, recovery wraps, console session secrets and the files that
//! hold keys.

pub mod chain;
pub mod envelope;
pub mod private_file;
pub mod recovery_wrap;
pub mod session;
pub mod shamir;
pub mod signing;
pub mod totp;

/// Fill a buffer from the operating system's CSPRNG.
///
/// A failing CSPRNG leaves nothing safe to do, so this panics with the
/// invariant rather than continue with predictable bytes.
pub fn random_bytes<const N: usize>() -> zeroize::Zeroizing<[u8; N]> {
    let mut b = zeroize::Zeroizing::new([0u8; N]);
    getrandom::fill(b.as_mut()).expect("the operating system CSPRNG must be available");
    b
}
