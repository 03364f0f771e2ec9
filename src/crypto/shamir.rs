//! Shamir's secret sharing of the recovery key, with authenticated shares.
//!
//! The arithmetic is `blahaj` (GF(256), byte-wise; the maintained fork of
//! `sharks` that fixes RUSTSEC-2024-0398, zero polynomial coefficients).
//! Like every Shamir library it combines whatever it is given: a wrong,
//! corrupted or foreign share, or too few shares, silently yield a wrong
//! secret. So every share carries its set id, index and threshold, and is
//! checked against a commitment recorded when the set was made; the
//! combined secret is checked against a key check value. A bad share is
//! named, never combined.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const SHARE_FORMAT: &str = "breakglass-share-v1";
pub const MAX_SHARES: usize = 255;

/// One share as a custodian holds it (inside their age-encrypted file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareData {
    pub format: String,
    pub set_id: String,
    pub index: u8,
    pub threshold: u8,
    /// The custodian it was made for (informative; not trusted).
    pub custodian: String,
    /// The share bytes (x then y), base64.
    pub share: String,
}

impl std::fmt::Debug for ShareData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareData")
            .field("set_id", &self.set_id)
            .field("index", &self.index)
            .field("custodian", &self.custodian)
            .finish_non_exhaustive()
    }
}

impl Drop for ShareData {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.share.zeroize();
    }
}

/// What the service records about a set: enough to authenticate shares and
/// the combined key, nothing that helps to rebuild it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetInfo {
    pub set_id: String,
    pub threshold: u8,
    /// Share index → commitment.
    pub commitments: BTreeMap<u8, String>,
    pub key_check: String,
}

/// Why shares were not combined. Each names the share at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CombineError {
    #[error("share {index} is not a breakglass share file (format or encoding)")]
    Malformed { index: u8 },
    #[error("share {index} belongs to another share set ({set_id})")]
    Foreign { index: u8, set_id: String },
    #[error("share {index} is not part of this set")]
    UnknownIndex { index: u8 },
    #[error("share {index} is corrupted: it does not match the commitment recorded for it")]
    Corrupted { index: u8 },
    #[error("share {index} was given twice")]
    Duplicate { index: u8 },
    #[error("{have} valid share(s) given; {need} more needed (threshold {threshold})")]
    NotEnough {
        have: usize,
        need: usize,
        threshold: u8,
    },
    #[error("the shares combine to a key that fails its check")]
    KeyCheck,
}

fn commitment(set_id: &str, index: u8, threshold: u8, share: &[u8]) -> String {
    let d = Sha256::new()
        .chain_update(b"breakglass-share-commitment-v1\0")
        .chain_update(set_id.as_bytes())
        .chain_update([0, index, threshold])
        .chain_update(share)
        .finalize();
    hex::encode(d)
}

fn key_check(set_id: &str, secret: &[u8]) -> String {
    let d = Sha256::new()
        .chain_update(b"breakglass-recovery-key-check-v1\0")
        .chain_update(set_id.as_bytes())
        .chain_update([0])
        .chain_update(secret)
        .finalize();
    hex::encode(d)
}

/// Split `secret` into `n` shares, any `k` of which rebuild it.
/// `custodians` names the holder of each share, in order.
pub fn split(
    secret: &[u8],
    k: u8,
    custodians: &[String],
) -> Result<(SetInfo, Vec<ShareData>), String> {
    let n = custodians.len();
    if k < 2 || usize::from(k) > n || n > MAX_SHARES {
        return Err(format!(
            "a threshold of {k} of {n} is not possible: need 2 ≤ k ≤ n ≤ {MAX_SHARES}"
        ));
    }
    let set_id = uuid::Uuid::new_v4().to_string();
    let dealer = blahaj::Sharks(k).dealer(secret);
    let mut commitments = BTreeMap::new();
    let mut shares = Vec::new();
    for (share, custodian) in dealer.take(n).zip(custodians) {
        let bytes = Zeroizing::new(Vec::from(&share));
        let index = bytes[0];
        commitments.insert(index, commitment(&set_id, index, k, &bytes));
        shares.push(ShareData {
            format: SHARE_FORMAT.into(),
            set_id: set_id.clone(),
            index,
            threshold: k,
            custodian: custodian.clone(),
            share: B64.encode(bytes.as_slice()),
        });
    }
    let info = SetInfo {
        key_check: key_check(&set_id, secret),
        set_id,
        threshold: k,
        commitments,
    };
    Ok((info, shares))
}

/// The commitment a share must match (what `share check` sends: never the
/// share itself).
pub fn share_commitment(s: &ShareData) -> Result<String, CombineError> {
    let bytes = Zeroizing::new(
        B64.decode(&s.share)
            .map_err(|_| CombineError::Malformed { index: s.index })?,
    );
    Ok(commitment(&s.set_id, s.index, s.threshold, &bytes))
}

/// Check one share against the set without combining anything.
pub fn check(info: &SetInfo, s: &ShareData) -> Result<(), CombineError> {
    let index = s.index;
    if s.format != SHARE_FORMAT {
        return Err(CombineError::Malformed { index });
    }
    if s.set_id != info.set_id {
        return Err(CombineError::Foreign {
            index,
            set_id: s.set_id.clone(),
        });
    }
    let Some(expected) = info.commitments.get(&index) else {
        return Err(CombineError::UnknownIndex { index });
    };
    let bytes = Zeroizing::new(
        B64.decode(&s.share)
            .map_err(|_| CombineError::Malformed { index })?,
    );
    if bytes.first() != Some(&index) || s.threshold != info.threshold {
        return Err(CombineError::Corrupted { index });
    }
    let actual = commitment(&s.set_id, index, s.threshold, &bytes);
    if !bool::from(actual.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(CombineError::Corrupted { index });
    }
    Ok(())
}

/// Authenticate every share, then combine; the result is checked too.
pub fn combine(info: &SetInfo, shares: &[ShareData]) -> Result<Zeroizing<Vec<u8>>, CombineError> {
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::new();
    for s in shares {
        check(info, s)?;
        if !seen.insert(s.index) {
            return Err(CombineError::Duplicate { index: s.index });
        }
        let bytes = Zeroizing::new(
            B64.decode(&s.share)
                .map_err(|_| CombineError::Malformed { index: s.index })?,
        );
        parsed.push(
            blahaj::Share::try_from(bytes.as_slice())
                .map_err(|_| CombineError::Malformed { index: s.index })?,
        );
    }
    let k = usize::from(info.threshold);
    if parsed.len() < k {
        return Err(CombineError::NotEnough {
            have: parsed.len(),
            need: k - parsed.len(),
            threshold: info.threshold,
        });
    }
    let secret = Zeroizing::new(
        blahaj::Sharks(info.threshold)
            .recover(parsed.iter())
            .map_err(|_| CombineError::KeyCheck)?,
    );
    let check = key_check(&info.set_id, &secret);
    if !bool::from(check.as_bytes().ct_eq(info.key_check.as_bytes())) {
        return Err(CombineError::KeyCheck);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn a_corrupted_a_foreign_and_a_duplicated_share_are_each_named() {
        let secret = [7u8; 32];
        let (info, shares) = split(&secret, 2, &names(3)).unwrap();
        let (_, other) = split(&secret, 2, &names(3)).unwrap();

        let mut bad = shares[1].clone();
        let mut raw = B64.decode(&bad.share).unwrap();
        raw[5] ^= 1;
        bad.share = B64.encode(raw);
        assert_eq!(
            combine(&info, &[shares[0].clone(), bad.clone()]).unwrap_err(),
            CombineError::Corrupted { index: bad.index }
        );
        assert!(matches!(
            combine(&info, &[shares[0].clone(), other[1].clone()]).unwrap_err(),
            CombineError::Foreign { .. }
        ));
        assert_eq!(
            combine(&info, &[shares[0].clone(), shares[0].clone()]).unwrap_err(),
            CombineError::Duplicate {
                index: shares[0].index
            }
        );
        assert_eq!(
            combine(&info, &[shares[2].clone()]).unwrap_err(),
            CombineError::NotEnough {
                have: 1,
                need: 1,
                threshold: 2
            }
        );
        assert_eq!(
            &combine(&info, &[shares[2].clone(), shares[0].clone()]).unwrap()[..],
            &secret
        );
    }

    #[test]
    fn impossible_thresholds_are_refused() {
        assert!(split(&[1; 32], 1, &names(3)).is_err());
        assert!(split(&[1; 32], 4, &names(3)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any k shares recover the secret; k-1 never yield it: refused
        /// outright, and even forced through the bare arithmetic the result
        /// fails the key check.
        #[test]
        fn any_k_shares_recover_and_k_minus_one_reveal_nothing_usable(
            secret in proptest::collection::vec(any::<u8>(), 32),
            n in 2usize..=20,
            k_seed in any::<u8>(),
            pick in any::<u64>(),
        ) {
            let k = 2 + (k_seed as usize % (n - 1));
            let (info, shares) = split(&secret, k as u8, &names(n)).unwrap();
            // A pseudo-random choice of k distinct shares.
            let mut order: Vec<usize> = (0..n).collect();
            let mut state = pick;
            for i in (1..n).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            let chosen: Vec<ShareData> = order[..k].iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(&combine(&info, &chosen).unwrap()[..], &secret[..]);

            let fewer = &chosen[..k - 1];
            let refused = matches!(combine(&info, fewer), Err(CombineError::NotEnough { need: 1, .. }));
            prop_assert!(refused);
            let raw: Vec<blahaj::Share> = fewer
                .iter()
                .map(|s| blahaj::Share::try_from(B64.decode(&s.share).unwrap().as_slice()).unwrap())
                .collect();
            let forced = blahaj::Sharks(k as u8 - 1).recover(raw.iter()).unwrap();
            prop_assert_ne!(key_check(&info.set_id, &forced), info.key_check.clone());
        }
    }
}
