//! regie: the operator and CLI that turn tenants, workplace packages, hosting components and
//! service levels into workloads, probes, metered usage and invoices.
//!
//! Layers, with arrows pointing down only:
//! - the face: [`cli`] (offline commands) and `runtime` (`regie run`);
//! - the pure core: [`inventory`] (cross-object rules), [`desired`] (objects to apply),
//!   [`tier`] (parsed service levels), [`sla`] (compliance) and [`billing`] (money);
//! - the bottom: [`input`] (reading YAML, with [`unknown_fields`]) and the API types of
//!   `regie-crds`.

pub mod api_client;
pub mod billing;
pub mod cli;
pub mod controller;
pub mod desired;
pub mod input;
pub mod inventory;
pub mod metrics;
pub mod rbac;
pub mod room;
pub mod runtime;
pub mod sla;
pub mod tier;
pub mod unknown_fields;
