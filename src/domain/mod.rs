//! Pure rules: no IO, no clocks, no keys.

pub mod action;
pub mod code;
pub mod names;
pub mod policy;
pub mod request;
pub mod role;
pub mod states;
pub mod text;

pub use action::Action;
pub use code::Code;
pub use names::{AccountId, CredentialName, CustodianName, FieldName, GroupName, PolicyName};
pub use policy::{Factor, Policy, PolicySet, Presence, Requirement};
pub use request::RequestState;
pub use role::Role;
