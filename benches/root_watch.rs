//! Root-watch classification throughput over a day of a busy
//! organisation's trail: BENCH_EVENTS events (default 5,000,000, about a
//! day of 200 accounts) in log files of 500 records, of the mix a trail
//! holds (assumed roles, IAM users, AWS services, console sign-ins; one in
//! a thousand a root event), with request and response bodies of the
//! usual sizes. Measured: parse and classify from the decompressed JSON,
//! and from the gzip file as S3 holds it. One core.
//!
//! Run: `cargo bench --bench root_watch`. Method and results:
//! docs/benchmarks.md.

use std::io::Write;
use std::time::Instant;

use breakglass::trail::{classify_records, parse_log_key, read_log_file};
use serde_json::{json, Value};

const PER_FILE: usize = 500;
const DISTINCT_FILES: usize = 48;
const ACCOUNT: &str = "111122223333";

fn record(i: usize) -> Value {
    let at = format!(
        "2026-12-04T{:02}:{:02}:{:02}Z",
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60
    );
    let id = format!("{:08x}-0000-4000-8000-{:012x}", i, i * 7919);
    let (source, name, identity) = match i % 1000 {
        0 => (
            "signin.amazonaws.com",
            "ConsoleLogin",
            json!({ "type": "Root", "principalId": ACCOUNT, "arn": format!("arn:aws:iam::{ACCOUNT}:root"), "accountId": ACCOUNT }),
        ),
        1 => (
            "s3.amazonaws.com",
            "ListBuckets",
            json!({ "type": "Root", "principalId": ACCOUNT, "arn": format!("arn:aws:iam::{ACCOUNT}:root"), "accountId": ACCOUNT, "accessKeyId": "AKIAROOTKEY000000001" }),
        ),
        n if n < 700 => (
            [
                "ec2.amazonaws.com",
                "s3.amazonaws.com",
                "lambda.amazonaws.com",
                "dynamodb.amazonaws.com",
            ][n % 4],
            [
                "DescribeInstances",
                "GetObject",
                "Invoke",
                "GetItem",
                "PutObject",
            ][n % 5],
            json!({
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE{n:06}:session-{n}"),
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-{}/session-{n}", n % 17),
                "accountId": ACCOUNT,
                "accessKeyId": format!("ASIAEXAMPLE{n:09}"),
                "sessionContext": {
                    "sessionIssuer": { "type": "Role", "principalId": "AROAEXAMPLE", "arn": format!("arn:aws:iam::{ACCOUNT}:role/app-{}", n % 17), "accountId": ACCOUNT, "userName": format!("app-{}", n % 17) },
                    "attributes": { "creationDate": at, "mfaAuthenticated": "false" },
                },
            }),
        ),
        n if n < 850 => (
            "iam.amazonaws.com",
            ["GetUser", "ListRoles", "GetPolicy"][n % 3],
            json!({ "type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::{ACCOUNT}:user/ci-{}", n % 5), "accountId": ACCOUNT, "accessKeyId": "AKIAEXAMPLE000000001", "userName": format!("ci-{}", n % 5) }),
        ),
        n => (
            "kms.amazonaws.com",
            ["Decrypt", "GenerateDataKey"][n % 2],
            json!({ "type": "AWSService", "invokedBy": "s3.amazonaws.com" }),
        ),
    };
    let mut r = json!({
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": at,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.170.0",
        "requestParameters": { "instancesSet": { "items": [{ "instanceId": format!("i-{i:017x}") }] }, "filterSet": {}, "maxResults": 1000 },
        "responseElements": null,
        "requestID": id,
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": { "tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ec2.us-east-1.amazonaws.com" },
    });
    if name == "ConsoleLogin" {
        r["responseElements"] = json!({ "ConsoleLogin": "Success" });
        r["additionalEventData"] = json!({ "LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "Yes" });
    }
    r
}

fn main() {
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let files: Vec<Vec<u8>> = (0..DISTINCT_FILES)
        .map(|f| {
            let records: Vec<Value> = (0..PER_FILE).map(|i| record(f * PER_FILE + i)).collect();
            json!({ "Records": records }).to_string().into_bytes()
        })
        .collect();
    let gz: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(f).unwrap();
            e.finish().unwrap()
        })
        .collect();
    let key = parse_log_key(&format!(
        "AWSLogs/o-abcdef1234/{ACCOUNT}/CloudTrail/us-east-1/2026/12/04/{ACCOUNT}_CloudTrail_us-east-1_20261204T1405Z_Ab12Cd34Ef56Gh78.json.gz"
    ))
    .unwrap();
    // Each file's root events, counted once by hand of the generator.
    let root_in: Vec<usize> = (0..DISTINCT_FILES)
        .map(|f| {
            (0..PER_FILE)
                .filter(|i| (f * PER_FILE + i) % 1000 < 2)
                .count()
        })
        .collect();
    let mean = files.iter().map(Vec::len).sum::<usize>() / (DISTINCT_FILES * PER_FILE);
    let rounds = total.div_ceil(PER_FILE);
    println!(
        "{total} events in {rounds} files of {PER_FILE} (mean record {mean} bytes, {:.1} KiB gzip per file)",
        gz.iter().map(Vec::len).sum::<usize>() as f64 / DISTINCT_FILES as f64 / 1024.0
    );
    println!("| stage | events | root events | seconds | events/s | MB/s (JSON) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (stage, gzipped) in [
        ("parse + classify (JSON)", false),
        ("gunzip + parse + classify", true),
    ] {
        let started = Instant::now();
        let (mut events, mut root, mut bytes, mut want) = (0usize, 0usize, 0usize, 0usize);
        for n in 0..rounds {
            let i = n % DISTINCT_FILES;
            let read = if gzipped {
                read_log_file(&gz[i], &key).unwrap()
            } else {
                classify_records(&files[i], ACCOUNT).unwrap()
            };
            events += read.records;
            root += read.root.len();
            bytes += files[i].len();
            want += root_in[i];
        }
        let s = started.elapsed().as_secs_f64();
        assert_eq!(events, rounds * PER_FILE);
        assert_eq!(root, want, "every root event found, and nothing else");
        println!(
            "| {stage} | {events} | {root} | {s:.2} | {:.0} | {:.0} |",
            events as f64 / s,
            bytes as f64 / s / 1e6
        );
    }
}
