//! Cost pools: a shared or one-off amount allocated over the tenants a label selector picks, by
//! an allocation key (per inhabitant, per account, equal shares, fixed shares).
//!
//! A tenant takes part for the days it is a member within the pool's period, so when one joins
//! or leaves, its share shrinks and the others' grow: the whole pool is always allocated. Shares
//! are rounded to cents by largest remainder, so they add up to the pool to the cent. Instalments
//! spread a share over the pool's quarters or months; the last instalment settles whatever the
//! earlier ones did not (a changed inhabitant count, the rounding of the parts).

use std::collections::BTreeMap;

use jiff::civil::Date;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use regie_crds::CostPool;
use regie_crds::commercial::{AllocationKey, Instalments};
use regie_crds::validate::{parse_date, parse_decimal};
use rust_decimal::{Decimal, RoundingStrategy};

use super::BillingError;

/// Whether `labels` satisfy a Kubernetes label selector (matchLabels and matchExpressions with
/// In, NotIn, Exists, DoesNotExist). No selector selects everything.
pub fn selects(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let Some(sel) = selector else { return Ok(true) };
    if let Some(ml) = &sel.match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let values = e.values.clone().unwrap_or_default();
        let has = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => {
                if values.is_empty() {
                    return Err(format!("matchExpressions[{i}]: operator In needs values"));
                }
                has.is_some_and(|v| values.contains(v))
            }
            "NotIn" => {
                if values.is_empty() {
                    return Err(format!(
                        "matchExpressions[{i}]: operator NotIn needs values"
                    ));
                }
                has.is_none_or(|v| !values.contains(v))
            }
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions[{i}]: operator {other:?} is not In, NotIn, Exists or DoesNotExist"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A tenant as pools see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
    /// First day of membership.
    pub joined: Date,
    /// Last day of membership (inclusive), if it leaves.
    pub leaves: Option<Date>,
    pub inhabitants: i64,
    pub accounts: i64,
}

/// One tenant's part of a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub tenant: String,
    /// Days of membership within the pool's period.
    pub days: i64,
    /// First and last day of those.
    pub first: Date,
    pub last: Date,
    /// The allocation key's weight × days.
    pub weight: Decimal,
    /// In cents; all shares add up to the pool exactly.
    pub amount: Decimal,
}

/// A pool, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub name: String,
    pub description: String,
    pub amount: Decimal,
    pub from: Date,
    pub until: Date,
    pub allocation: AllocationKey,
    pub shares: BTreeMap<String, Decimal>,
    pub selector: Option<LabelSelector>,
    pub instalments: Instalments,
}

impl Pool {
    pub fn from_object(p: &CostPool) -> Result<Pool, BillingError> {
        let name = p.name_any();
        let field = |f: &str, m: String| BillingError::input(format!("CostPool/{name}: {f}: {m}"));
        let s = &p.spec;
        let amount = parse_decimal(&s.amount).map_err(|m| field("spec.amount", m))?;
        if amount <= Decimal::ZERO || amount.scale() > 2 {
            return Err(field(
                "spec.amount",
                format!("{:?} must be more than 0, in cents", s.amount),
            ));
        }
        let from = parse_date(&s.from).map_err(|m| field("spec.from", m))?;
        let until = parse_date(&s.until).map_err(|m| field("spec.until", m))?;
        if until < from {
            return Err(field(
                "spec.until",
                format!("{} is before from {}", s.until, s.from),
            ));
        }
        let mut shares = BTreeMap::new();
        for (t, w) in &s.shares {
            let v = parse_decimal(w).map_err(|m| field(&format!("spec.shares.{t}"), m))?;
            if v <= Decimal::ZERO {
                return Err(field(
                    &format!("spec.shares.{t}"),
                    "must be more than 0".into(),
                ));
            }
            shares.insert(t.clone(), v);
        }
        Ok(Pool {
            description: s.description.clone().unwrap_or_else(|| name.clone()),
            name,
            amount,
            from,
            until,
            allocation: s.allocation,
            shares,
            selector: s.tenant_selector.clone(),
            instalments: s.instalments,
        })
    }

    /// Each selected member's share, rounded by largest remainder to sum exactly to the pool.
    pub fn allocate(&self, members: &[Member]) -> Result<Vec<Share>, BillingError> {
        let err = |m: String| BillingError::input(format!("CostPool/{}: {m}", self.name));
        let mut parts: Vec<Share> = Vec::new();
        for m in members {
            let picked = selects(self.selector.as_ref(), &m.labels)
                .map_err(|e| err(format!("spec.tenantSelector.{e}")))?;
            if !picked {
                continue;
            }
            let first = m.joined.max(self.from);
            let last = m.leaves.map_or(self.until, |l| l.min(self.until));
            if last < first {
                continue;
            }
            let days = i64::from((last - first).get_days()) + 1;
            let key = match self.allocation {
                AllocationKey::EqualShares => Decimal::ONE,
                AllocationKey::PerInhabitant => Decimal::from(m.inhabitants),
                AllocationKey::PerAccount => Decimal::from(m.accounts),
                AllocationKey::FixedShares => *self.shares.get(&m.tenant).ok_or_else(|| {
                    err(format!(
                        "spec.shares has no share for Tenant {:?}, which the selector picks",
                        m.tenant
                    ))
                })?,
            };
            parts.push(Share {
                tenant: m.tenant.clone(),
                days,
                first,
                last,
                weight: key * Decimal::from(days),
                amount: Decimal::ZERO,
            });
        }
        if parts.is_empty() {
            return Err(err(format!(
                "spec.tenantSelector selects no tenant that is a member between {} and {}: the pool cannot be allocated",
                self.from, self.until
            )));
        }
        let weights: Vec<Decimal> = parts.iter().map(|p| p.weight).collect();
        let amounts = largest_remainder(self.amount, &weights)
            .map_err(|m| err(format!("{m} (allocation {:?})", self.allocation)))?;
        for (p, a) in parts.iter_mut().zip(amounts) {
            p.amount = a;
        }
        Ok(parts)
    }
}

/// Splits `total` (in cents) in proportion to `weights`: every part is cut down to cents, and
/// the cents left over go one each to the parts with the largest remainders (the earlier part
/// on a tie), so the parts add up to `total` exactly.
pub fn largest_remainder(total: Decimal, weights: &[Decimal]) -> Result<Vec<Decimal>, String> {
    let sum: Decimal = weights.iter().copied().sum();
    if sum <= Decimal::ZERO || weights.iter().any(|w| *w < Decimal::ZERO) {
        return Err("the weights of the selected tenants add up to zero".into());
    }
    let cent = Decimal::new(1, 2);
    let mut floors = Vec::with_capacity(weights.len());
    let mut rests = Vec::with_capacity(weights.len());
    for w in weights {
        let exact = total * *w / sum;
        let floor = exact.round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity);
        floors.push(floor);
        rests.push(exact - floor);
    }
    let left = total - floors.iter().copied().sum::<Decimal>();
    let mut cents = (left / cent).round().try_into().unwrap_or(0usize);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| rests[*b].cmp(&rests[*a]).then(a.cmp(b)));
    for i in order.into_iter().cycle() {
        if cents == 0 {
            break;
        }
        floors[i] += cent;
        cents -= 1;
    }
    Ok(floors)
}

/// One instalment of a share, due on a day.
#[derive(Clone, Debug, PartialEq)]
pub struct Instalment {
    pub due: Date,
    /// First day after what the instalment covers (the next instalment's due day, or the day
    /// after the share's last day).
    pub until: Date,
    /// 1-based.
    pub index: usize,
    pub count: usize,
    pub amount: Decimal,
}

/// The instalments of a share: once (on its first day), quarterly (on its first day and the
/// first day of each later quarter it reaches) or monthly likewise. Earlier instalments are an
/// equal part (rounded to cents) unless `billed_before` says what was actually invoiced for
/// them; the last settles the difference to the share as it stands now.
pub fn instalments(
    schedule: Instalments,
    share: &Share,
    billed_before: &[Decimal],
) -> Vec<Instalment> {
    let mut dues = vec![share.first];
    let step_months: i8 = match schedule {
        Instalments::Once => 0,
        Instalments::Quarterly => 3,
        Instalments::Monthly => 1,
    };
    if step_months > 0 {
        // The first day of the period (quarter or month) after the share's first day.
        let m0 = share.first.month() - 1;
        let start_of = m0 - m0 % step_months;
        let mut y = share.first.year();
        let mut m = start_of + step_months;
        loop {
            if m >= 12 {
                y += 1;
                m -= 12;
            }
            let Ok(d) = Date::new(y, m + 1, 1) else { break };
            if d > share.last {
                break;
            }
            dues.push(d);
            m += step_months;
        }
    }
    let count = dues.len();
    let part = super::round_cents(share.amount / Decimal::from(count));
    let mut out = Vec::with_capacity(count);
    let mut so_far = Decimal::ZERO;
    for (i, due) in dues.iter().enumerate() {
        let until = dues
            .get(i + 1)
            .copied()
            .unwrap_or_else(|| share.last.tomorrow().unwrap_or(share.last));
        let amount = if i + 1 == count {
            share.amount - so_far
        } else {
            billed_before.get(i).copied().unwrap_or(part)
        };
        so_far += amount;
        out.push(Instalment {
            due: *due,
            until,
            index: i + 1,
            count,
            amount,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn member(name: &str, inhabitants: i64, labels: &[(&str, &str)]) -> Member {
        Member {
            tenant: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            joined: date(2020, 1, 1),
            leaves: None,
            inhabitants,
            accounts: 0,
        }
    }

    fn pool(amount: &str, key: AllocationKey, selector: Option<LabelSelector>) -> Pool {
        Pool {
            name: "p".into(),
            description: "p".into(),
            amount: d(amount),
            from: date(2024, 1, 1),
            until: date(2024, 12, 31),
            allocation: key,
            shares: BTreeMap::new(),
            selector,
            instalments: Instalments::Quarterly,
        }
    }

    fn wbw() -> Vec<Member> {
        [
            "etten-leur",
            "moerdijk",
            "roosendaal",
            "tholen",
            "werkplein",
        ]
        .iter()
        .map(|n| member(n, 0, &[("regie.dev/organisation", "ict-wbw")]))
        .collect()
    }

    #[test]
    fn equal_shares_of_the_i_programme() {
        let p = pool("640000.00", AllocationKey::EqualShares, None);
        let s = p.allocate(&wbw()).unwrap();
        assert!(s.iter().all(|x| x.amount == d("128000.00")));
    }

    #[test]
    fn equal_shares_with_a_member_leaving_mid_year_sum_exactly() {
        let mut ms = wbw();
        // Tholen leaves on 30 June 2024: 182 of 366 days (a leap year).
        ms[3].leaves = Some(date(2024, 6, 30));
        let p = pool("640000.00", AllocationKey::EqualShares, None);
        let s = p.allocate(&ms).unwrap();
        let total: Decimal = s.iter().map(|x| x.amount).sum();
        assert_eq!(
            total,
            d("640000.00"),
            "the whole pool is allocated to the cent"
        );
        let tholen = s.iter().find(|x| x.tenant == "tholen").unwrap();
        assert_eq!(tholen.days, 182);
        // Weights: four × 366 days and 182 days = 1646 member-days.
        // Tholen: 640000 × 182 / 1646 = 70765.4921…; the others 640000 × 366 / 1646 = 142308.6269…
        assert_eq!(tholen.amount, d("70765.49"));
        let others: Vec<_> = s
            .iter()
            .filter(|x| x.tenant != "tholen")
            .map(|x| x.amount)
            .collect();
        // 4 × 142308.62 + 70765.49 = 639999.97: three cents left, to the largest remainders
        // (0.0069… each, ahead of Tholen's 0.0021…), the first three in order.
        assert_eq!(
            others,
            [
                d("142308.63"),
                d("142308.63"),
                d("142308.63"),
                d("142308.62")
            ]
        );
    }

    #[test]
    fn per_inhabitant_only_over_the_tenants_that_take_the_product() {
        let ms = vec![
            member("a", 50_000, &[("regie.dev/product-e-suite", "true")]),
            member("b", 30_000, &[]),
            member("c", 20_000, &[("regie.dev/product-e-suite", "true")]),
        ];
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "regie.dev/product-e-suite".into(),
                "true".into(),
            )])),
            match_expressions: None,
        };
        // The e-Suite's 86% of Dimpact's 1.0 M transition costs of 2021.
        let p = pool("860000.00", AllocationKey::PerInhabitant, Some(sel));
        let s = p.allocate(&ms).unwrap();
        assert_eq!(s.len(), 2, "b does not take the product");
        assert_eq!(s[0].amount, d("614285.71"));
        assert_eq!(s[1].amount, d("245714.29"));
        assert_eq!(s[0].amount + s[1].amount, d("860000.00"));
    }

    #[test]
    fn match_expressions_in_notin_exists_doesnotexist() {
        let labels: BTreeMap<String, String> = [
            ("tier".to_string(), "gold".to_string()),
            ("region".into(), "west".into()),
        ]
        .into();
        let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        };
        let sel = |reqs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: None,
            match_expressions: Some(reqs),
        };
        assert!(
            selects(
                Some(&sel(vec![req("tier", "In", &["gold", "silver"])])),
                &labels
            )
            .unwrap()
        );
        assert!(!selects(Some(&sel(vec![req("tier", "NotIn", &["gold"])])), &labels).unwrap());
        assert!(selects(Some(&sel(vec![req("other", "NotIn", &["gold"])])), &labels).unwrap());
        assert!(selects(Some(&sel(vec![req("region", "Exists", &[])])), &labels).unwrap());
        assert!(
            !selects(
                Some(&sel(vec![req("region", "DoesNotExist", &[])])),
                &labels
            )
            .unwrap()
        );
        assert!(
            selects(
                Some(&sel(vec![
                    req("x", "DoesNotExist", &[]),
                    req("tier", "In", &["gold"])
                ])),
                &labels
            )
            .unwrap()
        );
        let e = selects(Some(&sel(vec![req("tier", "Gt", &["1"])])), &labels).unwrap_err();
        assert!(e.contains("not In, NotIn"), "{e}");
        assert!(selects(None, &labels).unwrap());
    }

    #[test]
    fn a_pool_selecting_no_tenant_is_an_error() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "regie.dev/organisation".into(),
                "dimpact".into(),
            )])),
            match_expressions: None,
        };
        let e = pool("1.00", AllocationKey::EqualShares, Some(sel))
            .allocate(&wbw())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CostPool/p: spec.tenantSelector selects no tenant"),
            "{e}"
        );
    }

    #[test]
    fn quarterly_instalments_and_the_last_settles() {
        let share = Share {
            tenant: "a".into(),
            days: 366,
            first: date(2024, 1, 1),
            last: date(2024, 12, 31),
            weight: Decimal::ONE,
            amount: d("100000.01"),
        };
        let i = instalments(Instalments::Quarterly, &share, &[]);
        let dues: Vec<_> = i.iter().map(|x| x.due.to_string()).collect();
        assert_eq!(
            dues,
            ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"]
        );
        let amounts: Vec<_> = i.iter().map(|x| x.amount).collect();
        // 100000.01 / 4 = 25000.0025 → 25000.00 three times, the last settles 25000.01.
        assert_eq!(
            amounts,
            [d("25000.00"), d("25000.00"), d("25000.00"), d("25000.01")]
        );
        // The inhabitant count changed after the first two quarters were invoiced on the old
        // figure: the last instalment settles the whole difference.
        let share2 = Share {
            amount: d("104000.00"),
            ..share.clone()
        };
        let i = instalments(
            Instalments::Quarterly,
            &share2,
            &[d("25000.00"), d("25000.00")],
        );
        let amounts: Vec<_> = i.iter().map(|x| x.amount).collect();
        assert_eq!(
            amounts,
            [d("25000.00"), d("25000.00"), d("26000.00"), d("28000.00")]
        );
        assert_eq!(amounts.iter().copied().sum::<Decimal>(), d("104000.00"));
    }

    #[test]
    fn instalments_follow_membership() {
        let share = Share {
            tenant: "a".into(),
            days: 100,
            first: date(2024, 2, 15),
            last: date(2024, 8, 10),
            weight: Decimal::ONE,
            amount: d("300.00"),
        };
        let q = instalments(Instalments::Quarterly, &share, &[]);
        assert_eq!(
            q.iter().map(|x| x.due.to_string()).collect::<Vec<_>>(),
            ["2024-02-15", "2024-04-01", "2024-07-01"]
        );
        assert_eq!(q[2].until, date(2024, 8, 11));
        let m = instalments(Instalments::Monthly, &share, &[]);
        assert_eq!(m.len(), 7);
        assert_eq!(m.iter().map(|x| x.amount).sum::<Decimal>(), d("300.00"));
        let o = instalments(Instalments::Once, &share, &[]);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].amount, d("300.00"));
    }
}
