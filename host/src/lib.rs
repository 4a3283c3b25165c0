//! Magpie: contact management and website tracking. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod companies;
pub mod config;
pub mod contacts;
pub mod error;
pub mod exports;
pub mod forms;
pub mod http;
pub mod imports;
pub mod jobs;
pub mod legacy_text;
pub mod mail;
pub mod plugins;
pub mod server;
pub mod state;
pub mod store;
pub mod time;
pub mod timeline;
pub mod tracking;
pub mod users;
pub mod waiting;
pub mod web;

pub use http::app;
