//! `host.log`: the plugin's messages in Magpie's log, tagged with its name.

use super::{LogLevel, Sandbox};

const MAX_MESSAGE: usize = 4096;

pub fn log(s: &Sandbox, level: LogLevel, message: &str) {
    let message: String = if message.len() > MAX_MESSAGE {
        message.chars().take(MAX_MESSAGE).collect::<String>() + "…"
    } else {
        message.to_owned()
    };
    let plugin = s.call.plugin.as_str();
    match level {
        LogLevel::Trace => tracing::trace!(plugin, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, "{message}"),
        LogLevel::Info => tracing::info!(plugin, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, "{message}"),
        LogLevel::Error => tracing::error!(plugin, "{message}"),
    }
}
