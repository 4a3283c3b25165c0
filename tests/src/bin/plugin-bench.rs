//! Plugin benchmark (figures, not a test): cold and warm loading, the per-call overhead
//! of `render` on a fresh instance (from the `InstancePre`) and on a warm instance,
//! against native Rust doing the same work, and a 25-event history page.
//!
//! Run in release mode: `cargo run --release -p magpie-tests --bin plugin-bench`

use std::sync::Arc;
use std::time::{Duration, Instant};

use magpie::plugins::bindings::types::Event;
use magpie::plugins::engine::Runtime;
use magpie::plugins::registry::clean_rendered;
use magpie::plugins::sandbox::CallContext;
use magpie::plugins::{BUILT_IN, Limits};
use serde_json::json;

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let q = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<58} n={:<6} p50={:>10.2} µs  p90={:>10.2} µs  p99={:>10.2} µs",
        samples.len(),
        us(q(0.5)),
        us(q(0.9)),
        us(q(0.99))
    );
}

fn time<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn page_hit(id: i64) -> Event {
    Event {
        id,
        contact_id: 1,
        event_type: "page.hit".into(),
        source: Some("tracking".into()),
        occurred_at: 1_700_000_000_000 + id,
        properties: json!({"url": "https://example.org/pricing", "title": "Pricing", "referrer": "https://www.google.com/", "language": "en", "time_on_page": 75}).to_string(),
    }
}

fn history_page() -> Vec<Event> {
    let samples = [
        ("lead.create", json!({"source": "api"})),
        ("lead.identified", json!({"source": "form"})),
        ("lead.ipadded", json!({"ip": "93.184.216.34"})),
        (
            "lead.tags",
            json!({"added": ["vip", "newsletter"], "removed": ["trial"]}),
        ),
        (
            "point.gained",
            json!({"delta": 10, "points": 35, "action": "form"}),
        ),
        (
            "lead.utmtagsadded",
            json!({"utm_source": "news", "utm_medium": "email", "utm_campaign": "spring"}),
        ),
        (
            "lead.note",
            json!({"text": "Called about pricing; wants a demo next week.", "type": "call"}),
        ),
        (
            "email.read",
            json!({"subject": "Spring offer", "reads": (0..20).map(|i| json!({"datetime": format!("2024-03-{:02} 10:00", i + 1)})).collect::<Vec<_>>()}),
        ),
        (
            "form.submitted",
            json!({"form": "Contact us", "values": {"email": "ada@example.org", "message": "Hello"}, "page_url": "https://example.org/contact"}),
        ),
        ("stage.changed", json!({"from": 1, "to": 2})),
    ];
    (0..25)
        .map(|i| {
            let (key, props) = &samples[i % samples.len()];
            if i % 3 == 0 {
                return page_hit(i as i64);
            }
            Event {
                id: i as i64,
                contact_id: 1,
                event_type: (*key).into(),
                source: None,
                occurred_at: i as i64,
                properties: props.to_string(),
            }
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let limits = Limits::default();
    let bytes = BUILT_IN
        .iter()
        .find(|(n, _)| *n == "core-events")
        .unwrap()
        .1;
    println!(
        "core-events.wasm: {} KiB; {} cores",
        bytes.len() / 1024,
        std::thread::available_parallelism()?.get()
    );

    // Cold load: compile (empty cache each time). Warm load: deserialize from the cache.
    let mut cold = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir()?;
        let rt = Runtime::new(limits, Some(dir.path().to_path_buf()))?;
        let (p, d) = time(|| rt.prepare(bytes));
        assert!(!p.map_err(anyhow::Error::msg)?.from_cache);
        cold.push(d);
    }
    stats("cold load (compile + link)", cold);
    let dir = tempfile::tempdir()?;
    let rt = Runtime::new(limits, Some(dir.path().to_path_buf()))?;
    rt.prepare(bytes).map_err(anyhow::Error::msg)?;
    let mut warm = Vec::new();
    for _ in 0..50 {
        let (p, d) = time(|| rt.prepare(bytes));
        assert!(p.map_err(anyhow::Error::msg)?.from_cache);
        warm.push(d);
    }
    stats("warm load (from the disk cache + link)", warm);
    println!("pooling allocator: {}", rt.pooling);

    let pre = rt.prepare(bytes).map_err(anyhow::Error::msg)?.pre;
    let ctx = || Arc::new(CallContext::detached("core-events", limits));
    let one = [page_hit(1)];

    // Fresh instance per call: new Store + WASI context + instantiate + render.
    for _ in 0..200 {
        let mut s = rt.instantiate(&pre, ctx()).unwrap();
        s.render(&one).unwrap();
    }
    let mut fresh = Vec::new();
    for _ in 0..3000 {
        let (r, d) = time(|| {
            let mut s = rt.instantiate(&pre, ctx()).unwrap();
            s.render(&one).unwrap()
        });
        assert_eq!(r.len(), 1);
        fresh.push(d);
    }
    stats("render 1 event, fresh instance from InstancePre", fresh);

    // Warm instance: the same store and instance for every call.
    let mut session = rt.instantiate(&pre, ctx()).unwrap();
    for _ in 0..1000 {
        session.arm();
        session.render(&one).unwrap();
    }
    let mut warm_calls = Vec::new();
    for _ in 0..20000 {
        session.arm();
        let (r, d) = time(|| session.render(&one).unwrap());
        assert_eq!(r.len(), 1);
        warm_calls.push(d);
    }
    stats("render 1 event, warm instance", warm_calls);

    // Native Rust doing the same work: parse the properties, render.
    let mut native = Vec::new();
    for _ in 0..20000 {
        let (r, d) = time(|| {
            let props: serde_json::Value = serde_json::from_str(&one[0].properties).unwrap();
            core_events::render(&one[0].event_type, &props)
        });
        std::hint::black_box(r);
        native.push(d);
    }
    stats("render 1 event, native Rust (same code)", native);

    // A history page: 25 events of several types in one call, cleaned by the host.
    let page = history_page();
    let mut pages = Vec::new();
    for _ in 0..1000 {
        let (r, d) = time(|| {
            let mut s = rt.instantiate(&pre, ctx()).unwrap();
            s.render(&page)
                .unwrap()
                .into_iter()
                .map(|r| r.map(clean_rendered))
                .collect::<Vec<_>>()
        });
        assert_eq!(r.len(), 25);
        pages.push(d);
    }
    stats("render a 25-event history page, fresh instance", pages);
    let mut native_pages = Vec::new();
    for _ in 0..5000 {
        let (r, d) = time(|| {
            page.iter()
                .map(|e| {
                    core_events::render(
                        &e.event_type,
                        &serde_json::from_str(&e.properties).unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        });
        std::hint::black_box(r);
        native_pages.push(d);
    }
    stats("render a 25-event history page, native Rust", native_pages);
    Ok(())
}
