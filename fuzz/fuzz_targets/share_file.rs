#![no_main]
//! Decrypted share files: any bytes are refused as a share of a real set
//! (its id is random per run, and its commitments are unknown), and a share
//! checked against the set it claims for itself (as a forged backup could)
//! is combined or refused without panicking.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use breakglass::crypto::shamir::{self, SetInfo, ShareData};
use libfuzzer_sys::fuzz_target;

static SET: LazyLock<(SetInfo, Vec<ShareData>)> = LazyLock::new(|| {
    let custodians: Vec<String> = ["ann", "bob", "sec"].map(String::from).to_vec();
    shamir::split(&[7; 32], 2, &custodians).expect("2 of 3 is a valid threshold")
});

fuzz_target!(|data: &[u8]| {
    let Ok(s) = serde_json::from_slice::<ShareData>(data) else {
        return;
    };
    let (info, shares) = &*SET;
    assert!(shamir::check(info, &s).is_err());
    assert!(shamir::combine(info, &[shares[0].clone(), s.clone()]).is_err());

    let Ok(commitment) = shamir::share_commitment(&s) else {
        return;
    };
    let claimed = SetInfo {
        set_id: s.set_id.clone(),
        threshold: s.threshold,
        commitments: BTreeMap::from([(s.index, commitment)]),
        key_check: String::new(),
    };
    // The key check is empty, so no combination may be accepted.
    assert!(shamir::combine(&claimed, &[s]).is_err());
});
