//! Measured accounts: the monitor the sources ask for against fluctuating account numbers. A
//! workplace package's `accountSource` is an HTTP JSON endpoint; the count sits at a JSON pointer
//! (`/accounts` by default) and must be a whole number of zero or more. The package's basis says
//! what is billed: the `declared` count, the `measured` one, or the `max` of both.

use std::time::Duration;

use regie_crds::tenancy::AccountBasis;
use serde_json::Value;

use super::BillingError;

/// The default JSON pointer of the count.
pub const DEFAULT_POINTER: &str = "/accounts";

/// The largest answer read from an account source.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The count at `pointer` in an answer: a JSON integer of zero or more, nothing else.
pub fn read_count(body: &Value, pointer: &str) -> Result<i64, BillingError> {
    let pointer = if pointer.is_empty() {
        DEFAULT_POINTER
    } else {
        pointer
    };
    let v = body.pointer(pointer).ok_or_else(|| {
        BillingError::Remote(format!("the answer has nothing at JSON pointer {pointer}"))
    })?;
    let n = v.as_i64().ok_or_else(|| {
        BillingError::Remote(format!(
            "the value at {pointer} is {v}, not a whole number of accounts"
        ))
    })?;
    if n < 0 {
        return Err(BillingError::Remote(format!(
            "the value at {pointer} is {n}: a count of accounts cannot be negative"
        )));
    }
    let most = regie_crds::validate::MAX_ACCOUNTS;
    if n > most {
        return Err(BillingError::Remote(format!(
            "the value at {pointer} is {n}: more accounts than the {most} a package may hold"
        )));
    }
    Ok(n)
}

/// Fetches the measured count. `timeout` bounds the whole request.
pub async fn fetch_measured(
    client: &reqwest::Client,
    url: &str,
    pointer: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<i64, BillingError> {
    let mut req = client
        .get(url)
        .timeout(timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            BillingError::Remote(format!(
                "{url} did not answer within {}s",
                timeout.as_secs_f32()
            ))
        } else {
            // reqwest's own message hides the cause (refused, reset, no route): name it. Its
            // text would also name the URL in its own normalised form, which the caller's
            // redaction of the URL as written does not find: without it, the caller's URL is
            // the only one in the message.
            let e = e.without_url();
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why = format!("{why}: {c}");
                cause = c.source();
            }
            BillingError::Remote(format!("{url}: {why}"))
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(BillingError::Remote(format!(
            "{url} answered HTTP {}",
            status.as_u16()
        )));
    }
    // The source is not trusted: an endless or huge answer must not exhaust the operator.
    let mut resp = resp;
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BillingError::Remote(format!("{url}: cannot read the answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(BillingError::Remote(format!(
                "{url} answered more than {} KiB; a count of accounts is far smaller",
                MAX_ANSWER_BYTES / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let json: Value = serde_json::from_slice(&body)
        .map_err(|e| BillingError::Remote(format!("{url} answered no JSON: {e}")))?;
    read_count(&json, pointer.unwrap_or(DEFAULT_POINTER))
        .map_err(|e| BillingError::Remote(format!("{url}: {e}")))
}

/// The count billed under a basis. Without a measurement (none yet, or the source is failing)
/// the declared count is billed, whatever the basis: a failing monitor must not zero a bill.
pub fn billed_accounts(declared: i64, measured: Option<i64>, basis: AccountBasis) -> i64 {
    match (basis, measured) {
        (AccountBasis::Declared, _) | (_, None) => declared,
        (AccountBasis::Measured, Some(m)) => m,
        (AccountBasis::Max, Some(m)) => declared.max(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_whole_non_negative_numbers_only() {
        assert_eq!(
            read_count(&json!({"accounts": 312}), "/accounts").unwrap(),
            312
        );
        assert_eq!(
            read_count(&json!({"data": {"count": 0}}), "/data/count").unwrap(),
            0
        );
        assert_eq!(read_count(&json!({"accounts": 5}), "").unwrap(), 5);
        for (body, needle) in [
            (json!({"accounts": 3.5}), "not a whole number"),
            (json!({"accounts": "12"}), "not a whole number"),
            (json!({"accounts": -1}), "cannot be negative"),
            (json!({"count": 1}), "nothing at JSON pointer /accounts"),
        ] {
            let e = read_count(&body, "/accounts").unwrap_err().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn the_basis_decides_what_is_billed() {
        assert_eq!(billed_accounts(310, Some(325), AccountBasis::Declared), 310);
        assert_eq!(billed_accounts(310, Some(325), AccountBasis::Measured), 325);
        assert_eq!(billed_accounts(310, Some(290), AccountBasis::Measured), 290);
        assert_eq!(billed_accounts(310, Some(325), AccountBasis::Max), 325);
        assert_eq!(billed_accounts(310, Some(290), AccountBasis::Max), 310);
        assert_eq!(billed_accounts(310, None, AccountBasis::Measured), 310);
    }
}
