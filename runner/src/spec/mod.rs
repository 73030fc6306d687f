//! Spec model (the lowest layer): parse, validate and locate YAML spec files.

mod action;
pub mod bless;
mod discover;
mod load;
mod locate;
mod model;
mod plan;
mod validate;
mod values;
mod version;

pub use action::{Action, SIGNALS};
pub use discover::{discover, load_all, LoadAllError};
pub use load::{load_file, load_str, LoadedSpec, SpecError};
pub use locate::{Locator, Pos};
pub use model::*;
pub use plan::{CasePlan, PlannedStep};
pub use validate::ALLOW_KINDS;
pub use values::*;
pub use version::{parse_version_req, version_matches};

/// JSON Schema of the spec format, for editors.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(model::Spec);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
