//! The moment of break-glass is chaotic: custodians approve at the same
//! second, the requester retries. Quorum, release-once and the replay guard
//! are decided in the database, so they hold under concurrency — on SQLite
//! (one embedded server) and on PostgreSQL.

mod common;

use common::{Backend, World};
use futures_util::future::join_all;
use serde_json::json;

both_backends!(
    concurrent_releases_release_exactly_once,
    concurrent_approvals_reach_the_quorum_once_and_keep_one_chain,
    the_same_code_submitted_twice_at_once_is_accepted_once,
);

async fn concurrent_releases_release_exactly_once(b: Backend) {
    let w = World::new(b).await;
    for _round in 0..3 {
        let id = w.approved_request().await;
        let calls = (0..10).map(|_| {
            w.t.post(
                format!("/v1/requests/{id}/release"),
                &w.requester,
                json!({}),
            )
        });
        let results = join_all(calls).await;
        let ok = results.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            1,
            "exactly one release: {:?}",
            results
                .iter()
                .map(|r| (r.status, r.code()))
                .collect::<Vec<_>>()
        );
        for r in results.iter().filter(|r| r.status != 200) {
            r.refused(409, "request_released");
        }
        let events = w.t.audit().await;
        let target = format!("request:{id}");
        let releases: Vec<_> = events
            .iter()
            .filter(|e| e.action == "request.release" && e.target == target)
            .collect();
        assert_eq!(
            releases.iter().filter(|e| e.outcome == "success").count(),
            1
        );
        assert_eq!(
            releases.iter().filter(|e| e.outcome == "refused").count(),
            9,
            "every refused attempt is audited"
        );
    }
    assert!(w.t.verify().await);
}

async fn concurrent_approvals_reach_the_quorum_once_and_keep_one_chain(b: Backend) {
    let w = World::new(b).await;
    let mut cast = vec![
        ("ann", w.ann.clone()),
        ("bob", w.bob.clone()),
        ("cat", w.cat.clone()),
        ("sec", w.sec.clone()),
    ];
    for (name, group) in [
        ("dan", "sre"),
        ("eve", "sre"),
        ("fay", "security"),
        ("gus", "security"),
    ] {
        let t = w.t.enrolled_custodian(&w.admin, name, &[group], &[]).await;
        cast.push((name, t));
    }
    w.t.next_step();
    let id = w.request().await;
    let calls = cast.iter().map(|(name, tok)| w.approve(&id, name, tok));
    let results = join_all(calls).await;
    for r in &results {
        assert!(
            r.status == 200
                || ["request_already_approved", "approval_not_needed"].contains(&r.code()),
            "unexpected {} {}",
            r.status,
            r.body
        );
    }
    let r =
        w.t.get(format!("/v1/requests/{id}"), &w.requester)
            .await
            .ok();
    assert_eq!(r["state"], "approved");
    let accepted = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        r["approvals"], accepted,
        "every accepted approval is recorded, and only those"
    );
    assert_eq!(accepted, 3, "exactly the approvals the policy needed");
    let approved_events =
        w.t.audit()
            .await
            .into_iter()
            .filter(|e| e.action == "request.approved")
            .count();
    assert_eq!(approved_events, 1, "the quorum is reached exactly once");
    // One linear chain: no two events share a sequence number or a parent.
    let events = w.t.audit().await;
    let mut seqs: Vec<_> = events.iter().map(|e| e.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), events.len());
    let parents: std::collections::HashSet<_> =
        events.iter().map(|e| e.prev_hash.clone()).collect();
    assert_eq!(parents.len(), events.len());
    assert!(w.t.verify().await);
}

async fn the_same_code_submitted_twice_at_once_is_accepted_once(b: Backend) {
    let w = World::new(b).await;
    for _round in 0..3 {
        let first = w.request().await;
        let second = w.request().await;
        let code = w.t.code("ann");
        let (a, c) = tokio::join!(
            w.t.post(
                format!("/v1/requests/{first}/approve"),
                &w.ann,
                json!({ "code": code })
            ),
            w.t.post(
                format!("/v1/requests/{second}/approve"),
                &w.ann,
                json!({ "code": code })
            ),
        );
        let accepted = [&a, &c].iter().filter(|r| r.status == 200).count();
        assert_eq!(accepted, 1, "{a:?} {c:?}");
        let refused = if a.status == 200 { &c } else { &a };
        refused.refused(409, "totp_replayed");
        w.t.next_step();
    }
    assert!(w.t.verify().await);
}
