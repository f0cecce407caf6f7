//! OTLP bombs: the smallest requests that decode into the most objects, sent by one
//! tenant's `ingest` key to the local stack binary (release build, its own process, so
//! its resident memory is its own), while another tenant reads.
//!
//! - Protobuf: one ResourceSpans, one ScopeSpans and 16 million empty spans (`12 00`
//!   repeated: 32 MB decompressed, about 31 KB with gzip).
//! - JSON: the same with ten million `{}` spans (about 28 KB with gzip).
//!
//! Each is sent alone (answer time and the growth of the stack's resident memory), then
//! ten of each at once while `/healthz` and the other tenant's `GET /api/health/agents` are
//! polled. Goal: each answers within 1 s, memory grows by at most 64 MB, and the reads keep
//! answering.

use std::time::{Duration, Instant};

use e2e_tests::otlp_bombs;

use super::stack::LocalStack;

async fn send(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, f64, String) {
    let t = Instant::now();
    let response = client
        .post(format!("{url}/v1/traces"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, ms, text)
        }
        Err(e) => (0, ms, e.to_string()),
    }
}

/// Runs the bombs and prints one Markdown table.
pub async fn bomb_benchmark() {
    let stack = LocalStack::start(&[]);
    let attacker = stack.create_key("attacker", "ingest");
    let client = reqwest::Client::new();
    // A reader of its own tenant has something to read.
    let ingest = client
        .post(format!("{}/api/health/events", stack.url))
        .bearer_auth(&stack.key)
        .json(&serde_json::json!({"events": [{"event_id": "e1", "type": "execution.started", "agent_id": "reader-agent", "execution_id": "x1", "operation": "work"}]}))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(ingest.ok(), Some(202), "seeding the reader's tenant");
    let bombs = [
        (
            "protobuf, 16 M empty spans",
            "application/x-protobuf",
            otlp_bombs::protobuf(16_000_000),
        ),
        (
            "JSON, 10 M `{}` spans",
            "application/json",
            otlp_bombs::json(10_000_000),
        ),
    ];
    println!("| request | gzip bytes | status | answer ms | RSS before → peak MiB | growth MiB |");
    println!("|---|---|---|---|---|---|");
    for (name, content_type, body) in &bombs {
        let before = super::stack::memory_mib(stack.pid(), "VmRSS");
        let size = body.len();
        let watch = stack.pid();
        let peak = tokio::spawn(async move {
            let mut peak = 0f64;
            for _ in 0..300 {
                peak = peak.max(super::stack::memory_mib(watch, "VmRSS"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        });
        let (status, ms, text) =
            send(&client, &stack.url, &attacker, content_type, body.clone()).await;
        let peak = peak
            .await
            .unwrap_or(0.0)
            .max(super::stack::memory_mib(stack.pid(), "VmRSS"));
        println!(
            "| {name} | {size} | {status} | {ms:.0} | {before:.1} → {peak:.1} | {:.1} |",
            peak - before
        );
        if status != 413 {
            println!("  (answer: {})", text.chars().take(200).collect::<String>());
        }
    }
    // Ten of each at once, while /healthz and the other tenant's reads are polled.
    let reads = {
        let (client, url, key) = (client.clone(), stack.url.clone(), stack.key.clone());
        tokio::spawn(async move {
            let (mut worst, mut failures, mut n) = (0f64, 0u32, 0u32);
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                for path in ["/healthz", "/api/health/agents"] {
                    let t = Instant::now();
                    let ok = client
                        .get(format!("{url}{path}"))
                        .bearer_auth(&key)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    worst = worst.max(t.elapsed().as_secs_f64() * 1000.0);
                    failures += u32::from(!ok);
                    n += 1;
                }
            }
            (worst, failures, n)
        })
    };
    let before = super::stack::memory_mib(stack.pid(), "VmRSS");
    let t = Instant::now();
    let mut sends = Vec::new();
    for _ in 0..10 {
        for (_, content_type, body) in &bombs {
            let (client, url, key, body) = (
                client.clone(),
                stack.url.clone(),
                attacker.clone(),
                body.clone(),
            );
            let content_type = *content_type;
            sends.push(tokio::spawn(async move {
                send(&client, &url, &key, content_type, body).await
            }));
        }
    }
    let watch = stack.pid();
    let mut peak = before;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for s in sends {
        peak = peak.max(super::stack::memory_mib(watch, "VmRSS"));
        let (status, _, _) = s.await.unwrap_or((0, 0.0, String::new()));
        *statuses.entry(status).or_default() += 1;
    }
    let all_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (worst, failures, n) = reads.await.unwrap_or((0.0, 0, 0));
    println!(
        "| 10 of each at once | | {statuses:?} | {all_ms:.0} (all) | {before:.1} → {peak:.1} | {:.1} |",
        peak - before
    );
    println!(
        "\nMeanwhile {n} reads (`/healthz` and another tenant's agents): {failures} failed, slowest {worst:.0} ms."
    );
}
