//! A loopback HTTP target server for the prober's tests and benchmark (work in progress).
