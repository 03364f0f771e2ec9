#![no_main]
//! Backup files, three ways, chosen by the first byte:
//! 0. any bytes, as `recover --backup` reads them: refused, never a panic;
//! 1. a body and shares of the fuzzer's making, signed with a key of its
//!    own (anyone can sign: the operator compares the key id), then
//!    recovered: the whole path past the signature, without panicking;
//! 2. edits (2-byte offset, new byte) of a valid, freshly signed backup:
//!    refused, or meaning exactly what the original meant.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use breakglass::app::recovery::{
    recover_from_backup, wrap_for_recovery, BackupBody, BackupCredential, BackupFile, BACKUP_FORMAT,
};
use breakglass::auth::SigningKey;
use breakglass::crypto::chain::canonical_json;
use breakglass::crypto::envelope::{credential_aad, Envelope};
use breakglass::crypto::shamir::{self, ShareData};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

const CREDENTIAL: &str = "aws-prod-root";

static SIGNER: LazyLock<SigningKey> = LazyLock::new(SigningKey::generate);

fn signed(body: BackupBody) -> Option<BackupFile> {
    let mut canonical = String::new();
    canonical_json(&serde_json::to_value(&body).ok()?, &mut canonical).ok()?;
    Some(BackupFile {
        signer_kid: SIGNER.kid(),
        signer_public_key: B64.encode(SIGNER.public_key()),
        signature: B64.encode(SIGNER.sign(canonical.as_bytes())),
        body,
    })
}

/// A valid backup of one credential, its file bytes, and two of its three
/// shares.
static VALID: LazyLock<(BackupFile, Vec<u8>, Vec<ShareData>)> = LazyLock::new(|| {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let custodians: Vec<String> = ["ann", "bob", "sec"].map(String::from).to_vec();
    let (set, shares) = shamir::split(
        identity.to_string().expose_secret().as_bytes(),
        2,
        &custodians,
    )
    .expect("2 of 3 is a valid threshold");
    let credential_id = "7d9f3c1e-0000-4000-8000-000000000001".to_owned();
    let key = [9u8; 32];
    let envelope = Envelope::assemble(
        &key,
        "local:fuzz",
        b"wrapped",
        &[1; 12],
        &credential_aad(&credential_id, 1),
        br#"{"fields":{"password":"hunter2"}}"#,
    );
    let body = BackupBody {
        format: BACKUP_FORMAT.into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        set,
        recovery_recipient: recipient.clone(),
        custodians,
        audit_head: (1, "00".repeat(32)),
        credentials: vec![BackupCredential {
            credential_id: credential_id.clone(),
            name: CREDENTIAL.into(),
            account_id: "123456789012".into(),
            policy: "default".into(),
            version: 1,
            recovery_wrap: B64.encode(
                wrap_for_recovery(&recipient, &credential_id, 1, &key)
                    .expect("a fresh recipient parses"),
            ),
            envelope: B64.encode(envelope.to_bytes()),
        }],
        not_recoverable: vec![],
    };
    let file = signed(body).expect("a backup body has no floating-point numbers");
    let bytes = serde_json::to_vec_pretty(&file).expect("a backup serialises");
    let two = shares[..2].to_vec();
    assert!(recover_from_backup(&file, CREDENTIAL, &two).is_ok());
    (file, bytes, two)
});

#[derive(serde::Deserialize)]
struct Forged {
    body: BackupBody,
    credential: String,
    shares: Vec<ShareData>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(file) = serde_json::from_slice::<BackupFile>(rest) {
                assert!(recover_from_backup(&file, CREDENTIAL, &VALID.2).is_err());
            }
        }
        1 => {
            if let Ok(f) = serde_json::from_slice::<Forged>(rest) {
                if let Some(file) = signed(f.body) {
                    let _ = recover_from_backup(&file, &f.credential, &f.shares);
                }
            }
        }
        _ => {
            let (file, bytes, shares) = &*VALID;
            let mut edited = bytes.clone();
            for e in rest.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % edited.len();
                edited[at] = e[2];
            }
            let Ok(parsed) = serde_json::from_slice::<BackupFile>(&edited) else {
                return;
            };
            if recover_from_backup(&parsed, CREDENTIAL, shares).is_ok() {
                assert_eq!(
                    serde_json::to_value(&parsed).unwrap(),
                    serde_json::to_value(file).unwrap(),
                    "an edited backup was accepted: {}",
                    String::from_utf8_lossy(&edited)
                );
            }
        }
    }
});
