//! Hostile: `describe` never returns. Loading it must fail (timed out), not hang.

use magpie_sdk::prelude::*;

struct Describe;

impl EventTypes for Describe {
    fn describe() -> PluginInfo {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    fn event_types() -> Vec<EventType> {
        vec![]
    }
}

export_plugin!(Describe: EventTypes);
