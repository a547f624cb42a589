//! The arithmetic of the billing run, pinned with expected amounts computed independently here
//! in integer cents: proration over the 743 and 745 hours of the daylight-saving months, an
//! interim price increase mid-month, notice after a downgrade and a cut, upgrades at once,
//! service credits on monthly and quarterly invoices, equal shares with a member leaving
//! mid-year and per-inhabitant shares of the product's takers adding up exactly to the pool,
//! pool instalments (the last settles), and half-up rounding at exactly half a cent.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::date;
use regie::billing::engine::{Catalogue, Credit, Credits, Order, TenantInput, bill};
use regie::billing::invoice::{Invoice, LineKind, State};
use regie::billing::ledger::BillableState;
use regie::billing::period::{Month, Period};
use regie::billing::pools::Pool;
use regie::billing::pricing::PriceBook;
use regie::billing::proration::Calendar;
use regie_crds::generated::{Segment, SegmentComponent};
use regie_crds::tenancy::{ComponentClass, InvoicingPeriod};
use regie_crds::{CostPool, PriceList};
use rust_decimal::Decimal;

const PRICES_2026: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: pl-2026}
spec:
  currency: EUR
  effectiveFrom: "2026-01-01"
  noticePeriod: 90d
  rates:
    - {item: account, profile: standard, serviceLevel: bronze, per: year, amount: "2135.00"}
    - {item: account, profile: standard, serviceLevel: silver, per: year, amount: "2348.50"}
    - {item: account, profile: standard, serviceLevel: gold, per: year, amount: "2668.75"}
    - {item: component, class: applicationHosting, per: month, amount: "1500.00"}
    - {item: component, class: applicationHosting, serviceLevel: gold, per: month, amount: "2000.00"}
    - {item: component, class: dataManagement, per: month, amount: "10.125"}
    - {item: flexibleHour, per: hour, amount: "100.00"}
"#;

/// An interim increase in the middle of July, at noon.
const INTERIM: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: pl-2026-07}
spec:
  currency: EUR
  effectiveFrom: "2026-07-15T12:00:00+02:00"
  noticePeriod: 90d
  rates:
    - {item: account, profile: standard, serviceLevel: bronze, per: year, amount: "2220.40"}
    - {item: account, profile: standard, serviceLevel: silver, per: year, amount: "2442.44"}
    - {item: account, profile: standard, serviceLevel: gold, per: year, amount: "2775.50"}
    - {item: component, class: applicationHosting, per: month, amount: "1500.00"}
    - {item: component, class: applicationHosting, serviceLevel: gold, per: month, amount: "2000.00"}
    - {item: component, class: dataManagement, per: month, amount: "10.125"}
    - {item: flexibleHour, per: hour, amount: "100.00"}
"#;

fn catalogue(lists: &[&str], pools: &[&str]) -> Catalogue {
    let cal = Calendar::amsterdam().unwrap();
    let lists: Vec<PriceList> = lists
        .iter()
        .map(|y| serde_yaml::from_str(y).unwrap())
        .collect();
    let book = PriceBook::new(&lists, &cal).unwrap();
    let pools = pools
        .iter()
        .map(|y| Pool::from_object(&serde_yaml::from_str::<CostPool>(y).unwrap()).unwrap())
        .collect();
    Catalogue {
        cal,
        book,
        pools,
        departed: Vec::new(),
    }
}

fn state(level: &str, accounts: i64, components: &[(&str, ComponentClass, &str)]) -> BillableState {
    BillableState {
        service_level: level.into(),
        accounts: BTreeMap::from([("standard".to_string(), accounts)]),
        measured_accounts: BTreeMap::new(),
        components: components
            .iter()
            .map(|(n, c, l)| SegmentComponent {
                name: n.to_string(),
                class: *c,
                service_level: l.to_string(),
            })
            .collect(),
    }
}

fn tenant(name: &str, declared: BillableState) -> TenantInput {
    TenantInput {
        name: name.into(),
        labels: BTreeMap::new(),
        joined: date(2024, 1, 1),
        leaves: None,
        inhabitants: 10_000,
        invoicing: InvoicingPeriod::Monthly,
        declared,
        usage: BTreeMap::new(),
        left_empty: Default::default(),
        orders: Vec::new(),
    }
}

fn seg(from: &str, to: &str, s: &BillableState) -> Segment {
    Segment {
        from: from.into(),
        to: Some(to.into()),
        service_level: s.service_level.clone(),
        accounts: s.accounts.clone(),
        measured_accounts: BTreeMap::new(),
        components: s.components.clone(),
    }
}

fn now() -> Timestamp {
    "2027-02-01T00:00:00Z".parse().unwrap()
}

fn run(cat: &Catalogue, tenants: &[TenantInput], credits: &Credits, period: &str) -> Vec<Invoice> {
    bill(cat, tenants, credits, Period::parse(period).unwrap(), now()).unwrap()
}

fn cents(d: Decimal) -> i128 {
    let mut d = d;
    d.rescale(2);
    d.mantissa()
}

/// Half-up cents of `num / den` (both in cents × units), positive only.
fn half_up(num: i128, den: i128) -> i128 {
    (2 * num + den) / (2 * den)
}

fn lines_of(inv: &Invoice, kind: LineKind) -> Vec<i128> {
    inv.lines
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| cents(l.amount))
        .collect()
}

#[test]
fn an_interim_increase_mid_month_splits_the_line_at_that_instant() {
    let cat = catalogue(&[PRICES_2026, INTERIM], &[]);
    let t = tenant(
        "a",
        state(
            "bronze",
            100,
            &[("app", ComponentClass::ApplicationHosting, "bronze")],
        ),
    );
    let inv = &run(&cat, &[t], &Credits::new(), "2026-07")[0];
    // July 2026 has 744 h; the new list applies from 15 July 12:00: 14.5 days (348 h) before,
    // 16.5 days (396 h) after. Yearly rates over 8760 h.
    let accounts = lines_of(inv, LineKind::Account);
    assert_eq!(
        accounts,
        [
            half_up(100 * 213_500 * 348, 8760),
            half_up(100 * 222_040 * 396, 8760)
        ]
    );
    assert_eq!(accounts, [848_151, 1_003_742], "8481.51 and 10037.42");
    // The component rate did not change: one line for the whole month, exactly the monthly rate.
    assert_eq!(lines_of(inv, LineKind::Component), [150_000]);
    let split = inv
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Account)
        .unwrap();
    assert_eq!(split.to.to_string(), "2026-07-15T10:00:00Z");
    assert_eq!(cents(inv.subtotal()), 848_151 + 1_003_742 + 150_000);
}

#[test]
fn a_downgrade_and_a_cut_are_billed_at_the_old_level_for_the_notice_period() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let silver = state("silver", 620, &[]);
    let bronze = state("bronze", 500, &[]);
    let mut t = tenant("a", silver.clone());
    // Silver with 620 accounts until 16 March 00:00, then bronze with 500.
    t.usage.insert(
        Month::new(2026, 3),
        vec![
            seg(
                "2026-03-01T00:00:00+01:00",
                "2026-03-16T00:00:00+01:00",
                &silver,
            ),
            seg(
                "2026-03-16T00:00:00+01:00",
                "2026-04-01T00:00:00+02:00",
                &bronze,
            ),
        ],
    );
    for m in 4..=7 {
        let (from, to) = (Month::new(2026, m), Month::new(2026, m + 1));
        t.usage.insert(
            from,
            vec![seg(
                &format!("{from}-01T00:00:00+02:00"),
                &format!("{to}-01T00:00:00+02:00"),
                &bronze,
            )],
        );
    }
    let excess_per_year: i128 = 620 * 234_850 - 500 * 213_500; // 388 570.00 a year, in cents
    let invs = run(&cat, &[t], &Credits::new(), "2026");
    let month = |m: &str| invs.iter().find(|i| i.period == m).unwrap();

    // March: 15 days silver (360 h), 16 days bronze less the summer-time hour (383 h).
    let march = month("2026-03");
    assert_eq!(
        lines_of(march, LineKind::Account),
        [
            half_up(500 * 213_500 * 383, 8760),
            half_up(620 * 234_850 * 360, 8760)
        ],
        "bronze line sorts before silver"
    );
    assert_eq!(
        lines_of(march, LineKind::Notice),
        [half_up(excess_per_year * 383, 8760)]
    );
    let notice = march
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Notice)
        .unwrap();
    assert!(
        notice
            .description
            .contains("silver × 620 instead of bronze × 500"),
        "{}",
        notice.description
    );
    // April and May: the whole month.
    assert_eq!(
        lines_of(month("2026-04"), LineKind::Notice),
        [half_up(excess_per_year * 720, 8760)]
    );
    assert_eq!(
        lines_of(month("2026-05"), LineKind::Notice),
        [half_up(excess_per_year * 744, 8760)]
    );
    // 90 days after 16 March is 14 June 00:00: 13 days of June (312 h), then no more.
    assert_eq!(
        lines_of(month("2026-06"), LineKind::Notice),
        [half_up(excess_per_year * 312, 8760)]
    );
    let june_notice = month("2026-06")
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Notice)
        .unwrap();
    assert_eq!(june_notice.to.to_string(), "2026-06-13T22:00:00Z");
    assert!(lines_of(month("2026-07"), LineKind::Notice).is_empty());
    // No notice before the reduction.
    assert!(lines_of(month("2026-02"), LineKind::Notice).is_empty());
}

/// A reduction at 02:30 on 29 December: its 90th day is 29 March, when 02:30 does not exist.
/// The notice ends at 03:00 summer time, the first instant after the skipped hour — not at the
/// month's end, where the surcharge ran on to when the end was taken as 01:30 winter time.
#[test]
fn a_notice_ending_in_the_hour_the_spring_change_skips_ends_after_it() {
    let prices_2025 = PRICES_2026.replace("2026-01-01", "2025-01-01");
    let cat = catalogue(&[&prices_2025], &[]);
    let silver = state("silver", 620, &[]);
    let bronze = state("bronze", 500, &[]);
    let mut t = tenant("a", silver.clone());
    t.usage.insert(
        Month::new(2025, 12),
        vec![
            seg(
                "2025-12-01T00:00:00+01:00",
                "2025-12-29T02:30:00+01:00",
                &silver,
            ),
            seg(
                "2025-12-29T02:30:00+01:00",
                "2026-01-01T00:00:00+01:00",
                &bronze,
            ),
        ],
    );
    for (m, from, to) in [
        (1, "2026-01-01T00:00:00+01:00", "2026-02-01T00:00:00+01:00"),
        (2, "2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"),
        (3, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"),
        (4, "2026-04-01T00:00:00+02:00", "2026-05-01T00:00:00+02:00"),
    ] {
        t.usage
            .insert(Month::new(2026, m), vec![seg(from, to, &bronze)]);
    }
    let excess_per_year: i128 = 620 * 234_850 - 500 * 213_500;
    let invs = run(&cat, &[t], &Credits::new(), "2026");
    let month = |m: &str| invs.iter().find(|i| i.period == m).unwrap();
    // 1 March 00:00 CET to 29 March 03:00 CEST: 28 days and 3 wall-clock hours, one skipped.
    assert_eq!(
        lines_of(month("2026-03"), LineKind::Notice),
        [half_up(excess_per_year * 674, 8760)]
    );
    let notice = month("2026-03")
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Notice)
        .unwrap();
    assert_eq!(notice.to.to_string(), "2026-03-29T01:00:00Z");
    assert!(lines_of(month("2026-04"), LineKind::Notice).is_empty());
}

/// A tenant that leaves during its notice period pays the notice until it leaves: after that it
/// has no service at either level, and its final invoice ends there.
#[test]
fn notice_ends_when_the_tenant_leaves() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let silver = state("silver", 620, &[]);
    let bronze = state("bronze", 620, &[]);
    let mut t = tenant("a", silver.clone());
    // Silver until 16 March 00:00, then bronze until it left on 20 March 00:00.
    t.usage.insert(
        Month::new(2026, 3),
        vec![
            seg(
                "2026-03-01T00:00:00+01:00",
                "2026-03-16T00:00:00+01:00",
                &silver,
            ),
            seg(
                "2026-03-16T00:00:00+01:00",
                "2026-03-20T00:00:00+01:00",
                &bronze,
            ),
        ],
    );
    let inv = &run(&cat, &[t], &Credits::new(), "2026-03")[0];
    // 16 to 20 March: 96 h at the difference between silver and bronze, 620 accounts.
    assert_eq!(
        lines_of(inv, LineKind::Notice),
        [half_up(620 * (234_850 - 213_500) * 96, 8760)]
    );
    let last = inv.lines.iter().map(|l| l.to).max().unwrap();
    assert_eq!(last.to_string(), "2026-03-19T23:00:00Z");
}

#[test]
fn upgrades_take_effect_at_once_without_notice() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let bronze = state(
        "bronze",
        500,
        &[("app", ComponentClass::ApplicationHosting, "bronze")],
    );
    let gold = state(
        "gold",
        520,
        &[("app", ComponentClass::ApplicationHosting, "gold")],
    );
    let mut t = tenant("a", bronze.clone());
    t.usage.insert(
        Month::new(2026, 3),
        vec![
            seg(
                "2026-03-01T00:00:00+01:00",
                "2026-03-16T00:00:00+01:00",
                &bronze,
            ),
            seg(
                "2026-03-16T00:00:00+01:00",
                "2026-04-01T00:00:00+02:00",
                &gold,
            ),
        ],
    );
    let inv = &run(&cat, &[t], &Credits::new(), "2026-03")[0];
    assert!(lines_of(inv, LineKind::Notice).is_empty());
    assert_eq!(
        lines_of(inv, LineKind::Account),
        [
            half_up(500 * 213_500 * 360, 8760),
            half_up(520 * 266_875 * 383, 8760)
        ]
    );
    // The component: 360 of 743 h at 1500.00 a month, 383 of 743 h at 2000.00 a month.
    assert_eq!(
        lines_of(inv, LineKind::Component),
        [half_up(150_000 * 360, 743), half_up(200_000 * 383, 743)]
    );
}

#[test]
fn a_component_downgrade_gets_notice_but_a_removal_does_not() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let gold = state(
        "gold",
        10,
        &[
            ("app", ComponentClass::ApplicationHosting, "gold"),
            ("old", ComponentClass::ApplicationHosting, "gold"),
        ],
    );
    let after = state(
        "gold",
        10,
        &[("app", ComponentClass::ApplicationHosting, "silver")],
    );
    let mut t = tenant("a", gold.clone());
    t.usage.insert(
        Month::new(2026, 4),
        vec![
            seg(
                "2026-04-01T00:00:00+02:00",
                "2026-04-11T00:00:00+02:00",
                &gold,
            ),
            seg(
                "2026-04-11T00:00:00+02:00",
                "2026-05-01T00:00:00+02:00",
                &after,
            ),
        ],
    );
    let inv = &run(&cat, &[t], &Credits::new(), "2026-04")[0];
    // app: gold 2000.00 → silver 1500.00 a month on 11 April: 20 of 30 days at the difference.
    assert_eq!(lines_of(inv, LineKind::Notice), [half_up(50_000 * 20, 30)]);
}

#[test]
fn credits_on_a_quarterly_invoice_are_a_share_of_that_months_charges() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let mut t = tenant(
        "q",
        state(
            "bronze",
            0,
            &[("app", ComponentClass::ApplicationHosting, "bronze")],
        ),
    );
    t.invoicing = InvoicingPeriod::Quarterly;
    let credits: Credits = BTreeMap::from([(
        ("q".to_string(), "app".to_string(), Month::new(2026, 2)),
        vec![Credit::month(Decimal::from(10))],
    )]);
    let invs = run(&cat, &[t], &credits, "2026-Q1");
    assert_eq!(invs.len(), 1, "one quarterly invoice");
    let inv = &invs[0];
    assert_eq!(inv.period, "2026-Q1");
    // Three whole months at 1500.00: one line of 4500.00; 10% of February's 1500.00 back.
    assert_eq!(lines_of(inv, LineKind::Component), [450_000]);
    assert_eq!(lines_of(inv, LineKind::Credit), [-15_000]);
    let credit = inv
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Credit)
        .unwrap();
    assert_eq!(credit.from.to_string(), "2026-01-31T23:00:00Z");
    assert_eq!(cents(inv.subtotal()), 435_000);
}

#[test]
fn pools_are_invoiced_in_quarterly_instalments() {
    let pool = r#"
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {name: regie-2026}
spec:
  description: Directing suppliers 2026
  amount: "100000.01"
  from: "2026-01-01"
  until: "2026-12-31"
  allocation: perInhabitant
  instalments: quarterly
"#;
    let cat = catalogue(&[PRICES_2026], &[pool]);
    let mut a = tenant("a", state("bronze", 1, &[]));
    a.inhabitants = 1;
    let mut b = tenant("b", state("bronze", 1, &[]));
    b.inhabitants = 2;
    let invs = run(&cat, &[a, b], &Credits::new(), "2026");
    let pool_lines = |t: &str| -> Vec<(String, i128)> {
        invs.iter()
            .filter(|i| i.tenant == t)
            .flat_map(|i| {
                i.lines
                    .iter()
                    .filter(|l| l.kind == LineKind::Pool)
                    .map(move |l| (i.period.clone(), cents(l.amount)))
            })
            .collect()
    };
    // Shares by inhabitants 1 : 2 of 100000.01: a 33333.3366… and b 66666.6733… are cut to
    // 33333.33 and 66666.67; the cent left goes to a's larger remainder (.0066 over .0033):
    // a 33333.34. Quarters: a 33333.34 / 4 = 8333.335 → 8333.34 three times, the last settles
    // 8333.32; b 16666.6675 → 16666.67 three times, then 16666.66.
    let a = pool_lines("a");
    assert_eq!(
        a.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["2026-01", "2026-04", "2026-07", "2026-10"]
    );
    assert_eq!(
        a.iter().map(|x| x.1).collect::<Vec<_>>(),
        [833_334, 833_334, 833_334, 833_332]
    );
    let b = pool_lines("b");
    assert_eq!(
        b.iter().map(|x| x.1).collect::<Vec<_>>(),
        [1_666_667, 1_666_667, 1_666_667, 1_666_666]
    );
    let all: i128 = a.iter().chain(b.iter()).map(|x| x.1).sum();
    assert_eq!(all, 10_000_001, "the whole pool, to the cent");
}

#[test]
fn half_a_cent_rounds_up() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let mut t = tenant(
        "a",
        state(
            "bronze",
            0,
            &[("dwh", ComponentClass::DataManagement, "bronze")],
        ),
    );
    t.orders.push(Order {
        id: "ServiceOrder/tenant-a/tiny".into(),
        date: date(2026, 3, 3),
        hours: Decimal::new(5, 1),
        rate: Some(Decimal::new(1, 2)),
        description: "half a cent".into(),
    });
    let inv = &run(&cat, &[t], &Credits::new(), "2026-03")[0];
    // 10.125 a month for the whole month: 10.125 → 10.13; 0.5 h × 0.01 = 0.005 → 0.01.
    assert_eq!(lines_of(inv, LineKind::Component), [1013]);
    assert_eq!(lines_of(inv, LineKind::FlexibleHour), [1]);
    assert_eq!(inv.state, State::Final);
}

#[test]
fn a_tenant_joining_mid_month_is_billed_from_its_first_day() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let mut t = tenant(
        "new",
        state(
            "bronze",
            0,
            &[("app", ComponentClass::ApplicationHosting, "bronze")],
        ),
    );
    t.joined = date(2026, 10, 20);
    t.leaves = Some(date(2026, 11, 9));
    let invs = run(&cat, &[t], &Credits::new(), "2026");
    assert_eq!(
        invs.iter().map(|i| i.period.as_str()).collect::<Vec<_>>(),
        ["2026-10", "2026-11"]
    );
    // 20 Oct 00:00 to 1 Nov: 12 days plus the winter-time hour = 289 of October's 745 hours.
    assert_eq!(
        lines_of(&invs[0], LineKind::Component),
        [half_up(150_000 * 289, 745)]
    );
    // 1 to 10 November (the last day inclusive): 9 of 30 days.
    assert_eq!(lines_of(&invs[1], LineKind::Component), [45_000]);
}

#[test]
fn daylight_saving_months_are_prorated_over_743_and_745_hours() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let bronze = state(
        "bronze",
        0,
        &[("app", ComponentClass::ApplicationHosting, "bronze")],
    );
    let gold = state(
        "bronze",
        0,
        &[("app", ComponentClass::ApplicationHosting, "gold")],
    );
    let mut t = tenant("a", bronze.clone());
    // March 2026 has 743 h (29 March 02:00 jumps to 03:00). From 1 March 00:00 to 29 March
    // 12:00 summer time: 28 days (672 h) and 11 h of the short Sunday = 683 h at bronze
    // (1500.00 a month); the remaining 60 h at gold (2000.00 a month).
    t.usage.insert(
        Month::new(2026, 3),
        vec![
            seg(
                "2026-03-01T00:00:00+01:00",
                "2026-03-29T12:00:00+02:00",
                &bronze,
            ),
            seg(
                "2026-03-29T12:00:00+02:00",
                "2026-04-01T00:00:00+02:00",
                &gold,
            ),
        ],
    );
    // October 2026 has 745 h (25 October 03:00 falls back to 02:00). To 25 October 12:00 winter
    // time: 24 days (576 h) and 13 h of the long Sunday = 589 h at bronze, then 156 h at gold.
    t.usage.insert(
        Month::new(2026, 10),
        vec![
            seg(
                "2026-10-01T00:00:00+02:00",
                "2026-10-25T12:00:00+01:00",
                &bronze,
            ),
            seg(
                "2026-10-25T12:00:00+01:00",
                "2026-11-01T00:00:00+01:00",
                &gold,
            ),
        ],
    );
    // A 10% service credit in March is 10% of the component's unrounded March charges.
    let credits: Credits = BTreeMap::from([(
        ("a".to_string(), "app".to_string(), Month::new(2026, 3)),
        vec![Credit::month(Decimal::from(10))],
    )]);
    let invs = run(&cat, &[t], &credits, "2026");
    let month = |m: &str| invs.iter().find(|i| i.period == m).unwrap();
    let march = month("2026-03");
    // 1500 × 683 / 743 = 1378.8694… → 1378.87; 2000 × 60 / 743 = 161.5074… → 161.51.
    assert_eq!(
        lines_of(march, LineKind::Component),
        [half_up(150_000 * 683, 743), half_up(200_000 * 60, 743)]
    );
    assert_eq!(lines_of(march, LineKind::Component), [137_887, 16_151]);
    // (1 024 500 + 120 000) / 743 = 1540.3768…; 10% = 154.0376… → −154.04.
    assert_eq!(lines_of(march, LineKind::Credit), [-15_404]);
    assert!(lines_of(march, LineKind::Notice).is_empty(), "an upgrade");
    assert_eq!(cents(march.subtotal()), 137_887 + 16_151 - 15_404);
    // 1500 × 589 / 745 = 1185.9060… → 1185.91; 2000 × 156 / 745 = 418.7919… → 418.79.
    let october = month("2026-10");
    assert_eq!(
        lines_of(october, LineKind::Component),
        [half_up(150_000 * 589, 745), half_up(200_000 * 156, 745)]
    );
    assert_eq!(lines_of(october, LineKind::Component), [118_591, 41_879]);
    // A month without a Usage is billed from the files: exactly the monthly rate, whatever
    // its length.
    assert_eq!(lines_of(month("2026-04"), LineKind::Component), [150_000]);
    assert!(lines_of(october, LineKind::Credit).is_empty());
}

const EQUAL_SHARES: &str = r#"
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {name: i-programme-2026}
spec:
  description: Joint i-programme
  amount: "650000.00"
  from: "2026-01-01"
  until: "2026-12-31"
  allocation: equalShares
  instalments: quarterly
"#;

/// Pool lines per tenant as (period, cents), in invoice order.
fn pool_lines(invs: &[Invoice], t: &str) -> Vec<(String, i128)> {
    invs.iter()
        .filter(|i| i.tenant == t)
        .flat_map(|i| {
            i.lines
                .iter()
                .filter(|l| l.kind == LineKind::Pool)
                .map(move |l| (i.period.clone(), cents(l.amount)))
        })
        .collect()
}

#[test]
fn equal_shares_with_a_member_leaving_mid_year_add_up_to_the_pool() {
    let cat = catalogue(&[PRICES_2026], &[EQUAL_SHARES]);
    let mut tenants: Vec<TenantInput> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| tenant(n, state("bronze", 1, &[])))
        .collect();
    tenants[4].leaves = Some(date(2026, 6, 30));
    let invs = run(&cat, &tenants, &Credits::new(), "2026");
    // Member-days: four × 365 and e's 181 (1 January to 30 June) = 1641.
    // a–d: 650000 × 365 / 1641 = 144576.4777… → 144576.47, remainder 0.0078 each;
    // e: 650000 × 181 / 1641 = 71694.0890… → 71694.08, remainder 0.0090.
    // The floors add up to 649999.96; the four cents go to the largest remainders: e first,
    // then a, b and c (equal remainders: the earlier tenant first).
    // Quarterly: 144576.48 / 4 = 36144.12 exactly; d's 144576.47 / 4 = 36144.1175 → 36144.12
    // three times and the last settles 36144.11; e has two instalments (January, April):
    // 71694.09 / 2 = 35847.045 → 35847.05, the last settles 35847.04.
    for t in ["a", "b", "c"] {
        assert_eq!(
            pool_lines(&invs, t),
            [
                ("2026-01".to_string(), 3_614_412),
                ("2026-04".into(), 3_614_412),
                ("2026-07".into(), 3_614_412),
                ("2026-10".into(), 3_614_412)
            ],
            "{t}"
        );
    }
    assert_eq!(
        pool_lines(&invs, "d")
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        [3_614_412, 3_614_412, 3_614_412, 3_614_411]
    );
    assert_eq!(
        pool_lines(&invs, "e"),
        [
            ("2026-01".to_string(), 3_584_705),
            ("2026-04".into(), 3_584_704)
        ]
    );
    assert!(
        !invs
            .iter()
            .any(|i| i.tenant == "e" && i.period.as_str() > "2026-06"),
        "no invoice after e left"
    );
    let all: i128 = invs
        .iter()
        .flat_map(|i| &i.lines)
        .filter(|l| l.kind == LineKind::Pool)
        .map(|l| cents(l.amount))
        .sum();
    assert_eq!(all, 65_000_000, "exactly the pool, to the cent");
}

#[test]
fn per_inhabitant_pools_are_shared_only_by_the_tenants_that_take_the_product() {
    let pool = r#"
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {name: e-suite-2026}
spec:
  description: e-Suite
  amount: "860000.00"
  from: "2026-01-01"
  until: "2026-12-31"
  allocation: perInhabitant
  instalments: once
  tenantSelector: {matchLabels: {regie.dev/product-e-suite: "true"}}
"#;
    let cat = catalogue(&[PRICES_2026], &[pool]);
    let mut tenants = Vec::new();
    for (name, inhabitants, takes) in [
        ("a", 50_000, true),
        ("b", 30_000, false),
        ("c", 20_000, true),
    ] {
        let mut t = tenant(name, state("bronze", 1, &[]));
        t.inhabitants = inhabitants;
        if takes {
            t.labels
                .insert("regie.dev/product-e-suite".into(), "true".into());
        }
        tenants.push(t);
    }
    let invs = run(&cat, &tenants, &Credits::new(), "2026");
    // Only a and c (70 000 inhabitants) share: a 860000 × 5/7 = 614285.7142… → 614285.71
    // (remainder 0.0043), c 860000 × 2/7 = 245714.2857… → 245714.28 (remainder 0.0057) gets
    // the cent left: 245714.29. b's 30 000 inhabitants count for nothing.
    assert_eq!(
        pool_lines(&invs, "a"),
        [("2026-01".to_string(), 61_428_571)]
    );
    assert_eq!(
        pool_lines(&invs, "c"),
        [("2026-01".to_string(), 24_571_429)]
    );
    assert!(pool_lines(&invs, "b").is_empty());
}

#[test]
fn a_member_joining_late_is_trued_up_against_what_was_invoiced_before() {
    let cat = catalogue(&[PRICES_2026], &[EQUAL_SHARES]);
    let five: Vec<TenantInput> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| tenant(n, state("bronze", 1, &[])))
        .collect();
    // January to September were invoiced while there were five.
    let then = run(&cat, &five, &Credits::new(), "2026");
    let mut six = five.clone();
    let mut f = tenant("f", state("bronze", 1, &[]));
    f.joined = date(2026, 10, 1);
    six.push(f);
    let now = run(&cat, &six, &Credits::new(), "2026");
    // Member-days 5 × 365 + 92 = 1917: e 650000 × 365 / 1917 = 123761.0850… → 123761.08
    // (the three cents left go to a, b and c), f 650000 × 92 / 1917 → 31194.57.
    for (t, share) in [("a", 12_376_109), ("e", 12_376_108)] {
        let was = pool_lines(&then, t);
        let is = pool_lines(&now, t);
        assert_eq!(was.iter().map(|x| x.1).collect::<Vec<_>>(), [3_250_000; 4]);
        // January, April and July as their invoices said; October settles the year.
        assert_eq!(is[..3], was[..3], "{t}");
        assert_eq!(is[3], ("2026-10".to_string(), share - 9_750_000), "{t}");
        assert_eq!(is.iter().map(|x| x.1).sum::<i128>(), share, "{t}");
    }
    assert_eq!(pool_lines(&now, "f"), [("2026-10".to_string(), 3_119_457)]);
    let all: i128 = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .flat_map(|t| pool_lines(&now, t))
        .map(|x| x.1)
        .sum();
    assert_eq!(all, 65_000_000, "the pool once, to the cent");
}

#[test]
fn hours_times_rate_too_large_is_an_error_naming_the_order() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let mut t = tenant("a", state("bronze", 1, &[]));
    t.orders.push(Order {
        id: "ServiceOrder/tenant-a/huge".into(),
        date: date(2026, 3, 2),
        hours: Decimal::from(1_000_000_000_000_000_i64),
        rate: Some(Decimal::from(100_000_000_000_000_i64)),
        description: "too much".into(),
    });
    let e = bill(
        &cat,
        &[t],
        &Credits::new(),
        Period::parse("2026-03").unwrap(),
        now(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("ServiceOrder/tenant-a/huge: spec.hours × rate"),
        "{e}"
    );
    assert!(e.contains("more than billing takes"), "{e}");
}

#[test]
fn an_account_count_near_the_largest_integer_is_an_error_not_a_panic() {
    let list = r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: pl-dear}
spec:
  currency: EUR
  effectiveFrom: "2026-01-01"
  rates:
    - {item: account, profile: standard, serviceLevel: bronze, per: year, amount: "3300.00"}
"#;
    let cat = catalogue(&[list], &[]);
    // What an account source might answer: billed as the month's state of the ledger.
    let huge = state("bronze", i64::MAX - 1, &[]);
    let mut t = tenant("a", state("bronze", 1, &[]));
    t.usage.insert(
        Month::new(2026, 3),
        vec![seg(
            "2026-03-01T00:00:00+01:00",
            "2026-04-01T00:00:00+02:00",
            &huge,
        )],
    );
    let e = bill(
        &cat,
        &[t],
        &Credits::new(),
        Period::parse("2026-03").unwrap(),
        now(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("billing Tenant/a: Workplace accounts standard, bronze"),
        "{e}"
    );
    assert!(e.contains("PriceList/pl-dear"), "{e}");
    assert!(e.contains("more than billing takes"), "{e}");
}

/// A component reclassified mid-month is charged under two keys (its name with each class);
/// its service credit is a share of all its charges for the month, not of the first class's.
/// April 2026 (720 h): `app` as applicationHosting at 2400.00 a month for the first 15 days
/// (1200.00), then as systemIntegration at 2000.00 (1000.00); 5% of 2200.00 is −110.00 (the
/// first class alone gave −60.00).
#[test]
fn a_credit_covers_every_class_a_component_was_charged_under() {
    let prices = r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {name: pl-2026}
spec:
  currency: EUR
  effectiveFrom: "2026-01-01"
  rates:
    - {item: account, profile: standard, serviceLevel: bronze, per: year, amount: "2135.00"}
    - {item: component, class: applicationHosting, per: month, amount: "2400.00"}
    - {item: component, class: systemIntegration, per: month, amount: "2000.00"}
"#;
    let cat = catalogue(&[prices], &[]);
    let hosting = state(
        "bronze",
        0,
        &[("app", ComponentClass::ApplicationHosting, "bronze")],
    );
    let integration = state(
        "bronze",
        0,
        &[("app", ComponentClass::SystemIntegration, "bronze")],
    );
    let mut t = tenant("a", hosting.clone());
    t.usage.insert(
        Month::new(2026, 4),
        vec![
            seg(
                "2026-04-01T00:00:00+02:00",
                "2026-04-16T00:00:00+02:00",
                &hosting,
            ),
            seg(
                "2026-04-16T00:00:00+02:00",
                "2026-05-01T00:00:00+02:00",
                &integration,
            ),
        ],
    );
    let credits: Credits = BTreeMap::from([(
        ("a".to_string(), "app".to_string(), Month::new(2026, 4)),
        vec![Credit::month(Decimal::from(5))],
    )]);
    let inv = &run(&cat, &[t], &credits, "2026-04")[0];
    assert_eq!(lines_of(inv, LineKind::Component), [120_000, 100_000]);
    assert_eq!(lines_of(inv, LineKind::Credit), [-11_000]);
    assert_eq!(cents(inv.subtotal()), 220_000 - 11_000);
}

/// A PriceList Peppol would reject is refused where both `regie validate` and billing read it:
/// category S at 0% (BR-S-05), AE without a buyer VAT identifier (BR-AE-02). A month priced
/// partly under a list of category O and partly under one of S is refused naming the O list
/// (BR-O-11 to BR-O-14): category O goes on an invoice alone.
#[test]
fn vat_treatments_peppol_rejects_are_refused() {
    let with_vat = |name: &str, from: &str, vat: &str| {
        format!(
            r#"
apiVersion: regie.dev/v1alpha1
kind: PriceList
metadata: {{name: {name}}}
spec:
  currency: EUR
  effectiveFrom: "{from}"
  vat: {vat}
  rates:
    - {{item: account, profile: standard, serviceLevel: bronze, per: month, amount: "30.00"}}
"#
        )
    };
    let refused = |yaml: &str| -> String {
        let list: PriceList = serde_yaml::from_str(yaml).unwrap();
        regie::billing::engine::catalogue(&[list], [], Calendar::amsterdam().unwrap())
            .unwrap_err()
            .to_string()
    };
    let e = refused(&with_vat(
        "zero",
        "2026-01-01",
        r#"{category: S, percent: "0"}"#,
    ));
    assert!(
        e.contains("PriceList/zero: spec.vat.percent") && e.contains("BR-S-05"),
        "{e}"
    );
    let e = refused(&with_vat(
        "reverse",
        "2026-01-01",
        r#"{category: AE, percent: "0"}"#,
    ));
    assert!(
        e.contains("PriceList/reverse: spec.vat.category") && e.contains("BR-AE-02"),
        "{e}"
    );
    let standard = with_vat("standard", "2026-01-01", r#"{category: S, percent: "21"}"#);
    let outside = with_vat(
        "outside",
        "2026-03-16",
        r#"{category: O, percent: "0", exemptionReason: "Not subject to VAT"}"#,
    );
    let cat = catalogue(&[&standard, &outside], &[]);
    let t = tenant("a", state("bronze", 10, &[]));
    let e = bill(
        &cat,
        std::slice::from_ref(&t),
        &Credits::new(),
        Period::parse("2026-03").unwrap(),
        now(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("Tenant/a") && e.contains("PriceList/outside: spec.vat.category O"),
        "{e}"
    );
    // A month wholly under one of them is fine: 10 accounts at 30.00.
    let april = run(&cat, &[t], &Credits::new(), "2026-04");
    assert_eq!(cents(april[0].subtotal()), 30_000);
    assert!(april[0].lines.iter().all(|l| l.vat.category == "O"));
}

/// A Usage is billed within the tenant's membership only, as its files are: a Tenant with
/// `joined: 2026-04-01` applied on 20 March has a ledger from 20 March, and nothing of March is
/// billed (it was 12 days); one that `leaves: 2026-03-15` and still runs to the month's end is
/// billed to the end of 15 March: 10 bronze accounts at 2135.00 a year for 360 of 8760 hours,
/// 877.40 (it was the whole month, 1810.85).
#[test]
fn a_ledger_is_billed_within_the_membership_only() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let bronze = state("bronze", 10, &[]);
    let mut early = tenant("early", bronze.clone());
    early.joined = date(2026, 4, 1);
    early.usage.insert(
        Month::new(2026, 3),
        vec![seg(
            "2026-03-20T09:00:00+01:00",
            "2026-04-01T00:00:00+02:00",
            &bronze,
        )],
    );
    assert!(
        run(&cat, &[early], &Credits::new(), "2026-03").is_empty(),
        "nothing before it joined"
    );
    let mut leaving = tenant("leaving", bronze.clone());
    leaving.leaves = Some(date(2026, 3, 15));
    leaving.usage.insert(
        Month::new(2026, 3),
        vec![seg(
            "2026-03-01T00:00:00+01:00",
            "2026-04-01T00:00:00+02:00",
            &bronze,
        )],
    );
    let inv = &run(&cat, &[leaving], &Credits::new(), "2026-03")[0];
    assert_eq!(
        lines_of(inv, LineKind::Account),
        [half_up(10 * 213_500 * 360, 8760)]
    );
    assert_eq!(lines_of(inv, LineKind::Account), [87_740]);
}

/// A component moved from bronze to gold on 16 April 2026 (an upgrade, billed at once from
/// midnight); its first gold probe ran at 09:00, where its SLA report splits April. Each part
/// is credited from the charges of its own stretch of time: the bronze part (5 %) from
/// 1 April to 16 April 09:00 — the bronze fortnight, € 750.00, and nine gold hours,
/// € 25.00 — and the gold part (10 %) from there to the month's end, € 975.00.
#[test]
fn a_credit_for_part_of_a_month_is_a_share_of_that_parts_charges() {
    let cat = catalogue(&[PRICES_2026], &[]);
    let bronze = state(
        "bronze",
        0,
        &[("app", ComponentClass::ApplicationHosting, "bronze")],
    );
    let gold = state(
        "gold",
        0,
        &[("app", ComponentClass::ApplicationHosting, "gold")],
    );
    let mut t = tenant("a", bronze.clone());
    t.usage.insert(
        Month::new(2026, 4),
        vec![
            seg(
                "2026-04-01T00:00:00+02:00",
                "2026-04-16T00:00:00+02:00",
                &bronze,
            ),
            seg(
                "2026-04-16T00:00:00+02:00",
                "2026-05-01T00:00:00+02:00",
                &gold,
            ),
        ],
    );
    let split: Timestamp = "2026-04-16T09:00:00+02:00".parse().unwrap();
    let credits: Credits = BTreeMap::from([(
        ("a".to_string(), "app".to_string(), Month::new(2026, 4)),
        vec![
            Credit {
                percent: Decimal::from(5),
                from: None,
                to: Some(split),
            },
            Credit {
                percent: Decimal::from(10),
                from: Some(split),
                to: None,
            },
        ],
    )]);
    let inv = &run(&cat, &[t], &credits, "2026-04")[0];
    assert_eq!(lines_of(inv, LineKind::Component), [75_000, 100_000]);
    let mut credited = lines_of(inv, LineKind::Credit);
    credited.sort_unstable();
    assert_eq!(credited, [-9_750, -3_875]);
    assert_eq!(cents(inv.subtotal()), 175_000 - 9_750 - 3_875);
    let gold_part = inv
        .lines
        .iter()
        .find(|l| l.kind == LineKind::Credit && l.amount == Decimal::new(-9_750, 2))
        .unwrap();
    assert_eq!(
        (gold_part.from, gold_part.to.to_string()),
        (split, "2026-04-30T22:00:00Z".into())
    );
    assert!(
        gold_part
            .description
            .contains("10% of its charges from 2026-04-16 09:00 to 2026-05-01 00:00 (975.00)"),
        "{}",
        gold_part.description
    );
}
