use std::mem::size_of;
fn main() {
    use regie_crds::tenancy::*;
    println!(
        "ObjectMeta {}",
        size_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>()
    );
    println!("HostingComponent {}", size_of::<HostingComponent>());
    println!("HCSpec {}", size_of::<HostingComponentSpec>());
    println!("HCStatus {}", size_of::<HostingComponentStatus>());
    println!(
        "Condition {}",
        size_of::<regie_crds::condition::Condition>()
    );
    println!("WorkplacePackage {}", size_of::<WorkplacePackage>());
    println!("Tenant {}", size_of::<Tenant>());
    println!("TenantSpec {}", size_of::<TenantSpec>());
    println!("TenantStatus {}", size_of::<TenantStatus>());
}
