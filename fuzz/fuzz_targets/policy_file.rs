#![no_main]
//! Policy files: any text is refused with an error naming a line of the
//! file, or accepted only as policies within the documented limits, whose
//! rules then answer without panicking.

use std::path::Path;

use breakglass::domain::policy::{parse_file, HoursWindow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = HoursWindow::parse(src);
    let lines = src.lines().count();
    match parse_file(Path::new("fuzz.toml"), src) {
        Err(e) => assert!(e.line <= lines + 1, "{e}"),
        Ok(policies) => {
            for (p, line) in policies {
                assert!(
                    line >= 1 && line <= lines,
                    "policy at line {line} of {lines}"
                );
                assert!(!p.require.is_empty());
                assert!(p.require.iter().all(|r| (1..=100).contains(&r.count)));
                assert!((60..=7 * 86_400).contains(&p.request_ttl_secs));
                assert!((60..=86_400).contains(&p.release_window_secs));
                assert!(p
                    .release_hours
                    .iter()
                    .all(|h| HoursWindow::parse(h).is_ok()));
                let _ = p.ticket_allowed(Some("INC-1234"));
                let _ = p.release_allowed_at(i64::MIN);
                let _ = p.release_allowed_at(1_800_000_000_000);
                let _ = (p.describe(), p.conditions(), p.missing(&[]));
            }
        }
    }
});
