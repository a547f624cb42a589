//! Test harness for regie against a real local control plane (etcd, kube-apiserver and
//! kube-controller-manager built from Debian's packages by `e2e/cluster`), shared by the
//! end-to-end tests, the benchmarks and the demo.

pub mod cluster;
pub mod operator;
pub mod targets;
