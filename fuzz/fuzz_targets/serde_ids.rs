//! Serde restore of `Ulid` and `UuidV7` from JSON: never panics, and a restored ID
//! serializes to its canonical text and restores to itself.
#![no_main]

use keel_idgen::{Ulid, UuidV7};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ulid) = serde_json::from_slice::<Ulid>(data) {
        let json = serde_json::to_string(&ulid).expect("serializes");
        assert_eq!(json, format!("\"{ulid}\""));
        assert_eq!(serde_json::from_str::<Ulid>(&json).ok(), Some(ulid));
        // What serde accepts is exactly what the text parser accepts.
        let text: String = serde_json::from_slice(data).expect("was a string");
        assert_eq!(Ulid::from_string(&text), Ok(ulid));
    } else if let Ok(text) = serde_json::from_slice::<String>(data) {
        assert!(Ulid::from_string(&text).is_err(), "serde refused {text:?}");
    }
    if let Ok(uuid) = serde_json::from_slice::<UuidV7>(data) {
        let json = serde_json::to_string(&uuid).expect("serializes");
        assert_eq!(json, format!("\"{uuid}\""));
        assert_eq!(serde_json::from_str::<UuidV7>(&json).ok(), Some(uuid));
        let text: String = serde_json::from_slice(data).expect("was a string");
        assert_eq!(UuidV7::from_string(&text), Ok(uuid));
    } else if let Ok(text) = serde_json::from_slice::<String>(data) {
        assert!(
            UuidV7::from_string(&text).is_err(),
            "serde refused {text:?}"
        );
    }
});
