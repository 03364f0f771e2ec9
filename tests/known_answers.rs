//! Known-answer tests: the envelope format and the audit chain encoding
//! against vectors computed by an independent implementation
//! (tests/vectors/generate.py: Python `cryptography` and `hashlib`).

use breakglass::crypto::chain::{AuditEvent, Verifier};
use breakglass::crypto::envelope::{credential_aad, seal_with_key, Envelope};
use breakglass::keys::local::LocalKeyService;
use breakglass::keys::{EncryptionContext, KeyService};
use serde_json::Value;
use zeroize::Zeroizing;

fn vectors(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[tokio::test]
async fn the_envelope_format_matches_an_independent_implementation() {
    let v = vectors("envelope.json");
    let id = v["credential_id"].as_str().unwrap();
    let version = v["version"].as_i64().unwrap();

    // Associated data and encryption context encodings.
    assert_eq!(
        hex::encode(credential_aad(id, version)),
        v["aad_hex"].as_str().unwrap()
    );
    let ctx = EncryptionContext::credential(id, version);
    assert_eq!(
        String::from_utf8(ctx.canonical_bytes()).unwrap(),
        v["context_canonical"].as_str().unwrap()
    );

    // The payload cipher.
    let ct = seal_with_key(
        &bytes::<32>(&v["data_key_hex"]),
        &bytes::<12>(&v["payload_nonce_hex"]),
        &credential_aad(id, version),
        v["plaintext"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(hex::encode(ct), v["ciphertext_hex"].as_str().unwrap());

    // The local key file's key id and data-key unwrap, then the whole envelope.
    let local = LocalKeyService::from_key(Zeroizing::new(bytes::<32>(&v["kek_hex"])));
    assert_eq!(local.key_id(), v["key_id"].as_str().unwrap());
    let env = Envelope::from_bytes(v["envelope"].to_string().as_bytes()).unwrap();
    let pt = env
        .open(&local, &ctx, &credential_aad(id, version))
        .await
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&pt).unwrap(),
        v["plaintext"].as_str().unwrap()
    );

    // Bound to its version: the same envelope does not open as another.
    let other = EncryptionContext::credential(id, version + 1);
    assert!(env
        .open(&local, &other, &credential_aad(id, version + 1))
        .await
        .is_err());
    assert!(env
        .open(&local, &ctx, &credential_aad(id, version + 1))
        .await
        .is_err());
}

#[test]
fn the_audit_chain_encoding_matches_an_independent_implementation() {
    let v = vectors("audit_chain.json");
    let mut verifier = Verifier::new();
    for item in v.as_array().unwrap() {
        let e: AuditEvent = serde_json::from_value(item["event"].clone()).unwrap();
        assert_eq!(
            String::from_utf8(e.canonical_bytes().unwrap()).unwrap(),
            item["canonical"].as_str().unwrap()
        );
        assert_eq!(e.compute_hash().unwrap(), e.hash);
        verifier.push(&e);
    }
    let verdict = verifier.finish(None);
    assert!(verdict.ok, "{verdict:?}");
    assert_eq!(verdict.events_checked, 3);
}
