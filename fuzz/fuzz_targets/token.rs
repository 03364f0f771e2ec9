#![no_main]
//! Bearer tokens, two ways, chosen by the first byte:
//! 0. any text: refused by the service's verifier, and its claimed issuer
//!    (read before any key is chosen) is read without panicking;
//! 1. edits (2-byte offset, new byte) of a token the service just issued:
//!    refused unless the edits changed nothing.

use std::sync::LazyLock;

use breakglass::auth::{SigningKey, TokenService};
use breakglass::domain::Role;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

static TOKENS: LazyLock<(TokenService, String)> = LazyLock::new(|| {
    let svc = TokenService::new(
        &SigningKey::generate(),
        "breakglass",
        "breakglass-api",
        86_400,
    );
    let (token, _) = svc
        .issue("alice", &[Role::Custodian], 3600, NOW)
        .expect("a valid subject, role and lifetime");
    (svc, token)
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (svc, token) = &*TOKENS;
    if mode % 2 == 0 {
        let Ok(t) = std::str::from_utf8(rest) else {
            return;
        };
        let _ = breakglass::oidc::claimed_issuer(t);
        assert!(svc.verify(t, NOW).is_err(), "accepted {t:?}");
    } else {
        let mut edited = token.clone().into_bytes();
        for e in rest.chunks_exact(3) {
            let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % edited.len();
            edited[at] = e[2];
        }
        let Ok(t) = String::from_utf8(edited) else {
            return;
        };
        if &t != token {
            assert!(svc.verify(&t, NOW).is_err(), "accepted {t:?}");
        }
    }
});
