//! Hostile: loops forever, allocates without bound, traps — in `render` (by event
//! type) and in `ingest` (by webhook path). The host must stop each call and go on.

use magpie_sdk::prelude::*;

struct Crash;

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    loop {
        keep.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&keep);
    }
}

impl EventTypes for Crash {
    fn describe() -> PluginInfo {
        plugin_info!().title("Crash (test)")
    }
    fn event_types() -> Vec<EventType> {
        ["loop", "alloc", "trap", "fine"]
            .iter()
            .map(|k| EventType::new(&format!("crash.{k}"), k, "fa-bomb", "Crash"))
            .collect()
    }
    fn render(event: &Event) -> Result<Rendered> {
        match event.event_type.as_str() {
            "crash.loop" => spin(),
            "crash.alloc" => hog(),
            "crash.trap" => panic!("render trapped on purpose"),
            _ => Ok(Rendered::new("fine")),
        }
    }
    fn ingest(request: WebhookRequest) -> Result<IngestResult> {
        match request.path.as_str() {
            "loop" => spin(),
            "alloc" => hog(),
            "trap" => panic!("ingest trapped on purpose"),
            "abort" => std::process::abort(),
            "error" => Err(Error::Failed("an ordinary error".into())),
            _ => Ok(IngestResult::events(vec![]).message("ok")),
        }
    }
}

export_plugin!(Crash: EventTypes);
