//! The network phase: where green's nodes and pods go inside the VPC blue already uses,
//! how many addresses they take, and what must be added — as pure decisions.
//!
//! - [`sizing`]: the VPC CNI's max-pods and address arithmetic, the instance-type table.
//! - [`cidr`]: subnet arithmetic, AWS's association restrictions, /28 fragmentation.
//! - [`plan`]: the plan as data (saved, reviewed, applied).
//! - [`planner`]: VPC view + request → plan, or a plain reason why not.
//! - [`apply`]: plan + the VPC now → the steps left, or a refusal (stale, overlapping).
//! - [`mirror`]: security-group rules admitting blue's ranges → the same for green's.

pub mod apply;
pub mod cidr;
pub mod mirror;
pub mod plan;
pub mod planner;
pub mod sizing;
