//! Exploration knobs (ninth round), read once from the environment. Not for committing.

use std::sync::OnceLock;

pub(crate) fn get(name: &'static str, slot: &'static OnceLock<u64>, default: u64) -> u64 {
    *slot.get_or_init(|| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    })
}

macro_rules! knob {
    ($name:literal, $default:expr) => {{
        static SLOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        crate::knobs::get($name, &SLOT, $default)
    }};
}
pub(crate) use knob;
