//! The `regie.dev/v1alpha1` API: the types of every regie kind, their validation, and the
//! generated CustomResourceDefinitions. No runtime and no I/O live here.
//!
//! | kind | scope | written by |
//! |---|---|---|
//! | ServiceLevel, PriceList, CostPool | cluster | platform engineers (the catalogue) |
//! | Tenant | cluster | platform engineers (one per participant) |
//! | WorkplacePackage, HostingComponent, ServiceOrder | tenant namespace | platform engineers |
//! | Usage, Invoice, SlaReport | cluster | the controller |

pub mod catalogue;
pub mod commercial;
pub mod condition;
pub mod crd;
pub mod duration;
pub mod generated;
pub mod schema;
pub mod status;
pub mod tenancy;
pub mod validate;
pub mod window;

pub use catalogue::{ServiceLevel, ServiceLevelSpec, ServiceLevelStatus};
pub use commercial::{
    CostPool, CostPoolSpec, PriceList, PriceListSpec, ServiceOrder, ServiceOrderSpec,
};
pub use generated::{Invoice, InvoiceSpec, SlaReport, SlaReportSpec, Usage, UsageSpec};
pub use tenancy::{
    HostingComponent, HostingComponentSpec, Tenant, TenantSpec, WorkplacePackage,
    WorkplacePackageSpec,
};

/// API group of every regie kind.
pub const GROUP: &str = "regie.dev";
/// The one served version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every regie kind.
pub const API_VERSION: &str = "regie.dev/v1alpha1";
