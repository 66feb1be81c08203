//! baton's pure domain: what the world looks like ([`world`]), the migration plan and its
//! checks ([`plan`], [`planner`]), the phase machine that decides each next step
//! ([`machine`]) and its expected effects ([`simulate`]), the journal's records
//! ([`journal`]), the network phase's planner ([`network`]), and the traffic shift's
//! weights, gates and state machine ([`traffic`]). No IO, no async, no
//! Kubernetes or AWS clients: the adapters fill the world types, the runner in the binary
//! carries out the decisions.

mod conditions;
pub mod fences;
pub mod handover;
pub mod identity;
pub mod journal;
pub mod keys;
pub mod machine;
pub mod network;
pub mod permissions;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod quantity;
pub mod retire;
pub mod simulate;
pub mod traffic;
pub mod world;
