//! Metering and billing: the usage ledger, proration, prices, cost pools, credits, notice,
//! invoices and their exports.
