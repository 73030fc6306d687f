//! Spec model (the lowest layer): parse, validate and locate YAML spec files.

mod action;
mod discover;
mod load;
mod locate;
mod model;
mod values;

pub use discover::{discover, load_all, LoadAllError};
pub use load::{load_file, load_str, version_matches, LoadedSpec, SpecError, ALLOW_KINDS};
pub use locate::{Locator, Pos};
pub use action::{Action, SIGNALS};
pub use model::*;
pub use values::*;

/// JSON Schema of the spec format, for editors.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(model::Spec);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
