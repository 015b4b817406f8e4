use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn backups(times: &[&str]) -> Vec<BackupSummary> {
    times
        .iter()
        .map(|t| BackupSummary {
            id: t.to_string(),
            time: at(t),
        })
        .collect()
}

fn kept(policy: &KeepPolicy, times: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = policy
        .plan(&backups(times), at("2030-01-01T00:00:00Z"))
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.id)
        .collect();
    k.sort();
    k
}

#[test]
fn several_per_day_keeps_the_newest_of_each_day() {
    let p = KeepPolicy {
        daily: 2,
        ..Default::default()
    };
    let k = kept(
        &p,
        &[
            "2026-01-01T01:00:00Z",
            "2026-01-01T05:00:00Z",
            "2026-01-02T01:00:00Z",
            "2026-01-02T09:00:00Z",
            "2026-01-03T09:00:00Z",
        ],
    );
    assert_eq!(k, vec!["2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z"]);
}

#[test]
fn slots_left_at_the_oldest_keep_the_oldest() {
    let p = KeepPolicy {
        daily: 7,
        ..Default::default()
    };
    let plan = p.plan(
        &backups(&["2026-01-01T01:00:00Z", "2026-01-01T05:00:00Z", "2026-01-02T01:00:00Z"]),
        Utc::now(),
    );
    let reasons: Vec<_> = plan.iter().map(|d| d.reasons.join(",")).collect();
    assert_eq!(reasons, vec!["daily 1/7", "daily 2/7", "oldest daily"]);
}

#[test]
fn iso_week_spanning_a_year_end_is_one_week() {
    let p = KeepPolicy {
        weekly: 2,
        ..Default::default()
    };
    let k = kept(
        &p,
        &["2024-12-23T12:00:00Z", "2024-12-30T12:00:00Z", "2025-01-01T12:00:00Z"],
    );
    // 2024-12-30 and 2025-01-01 are both in ISO week 2025-W01: only the newer counts.
    assert_eq!(k, vec!["2024-12-23T12:00:00Z", "2025-01-01T12:00:00Z"]);
}

#[test]
fn days_are_counted_in_the_configured_timezone() {
    // 23:30 UTC and 00:30 UTC the next day are one day in New York.
    let p = KeepPolicy {
        daily: 1,
        timezone: chrono_tz::America::New_York,
        ..Default::default()
    };
    let plan = p.plan(&backups(&["2026-03-07T23:30:00Z", "2026-03-08T00:30:00Z"]), Utc::now());
    assert!(plan[0].keep && plan[0].reasons == vec!["daily 1/1"]);
    assert!(!plan[1].keep);
}

#[test]
fn within_keeps_relative_to_the_newest_backup() {
    let p = KeepPolicy {
        within: Some(parse_span("2d").unwrap()),
        ..Default::default()
    };
    let k = kept(
        &p,
        &["2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"],
    );
    assert_eq!(k, vec!["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"]);
}

#[test]
fn no_rules_keep_everything() {
    let p = KeepPolicy::default();
    assert_eq!(kept(&p, &["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]).len(), 2);
}

#[test]
fn spans_parse() {
    assert_eq!(parse_span("30d").unwrap(), Duration::days(30));
    assert_eq!(parse_span("1w2d").unwrap(), Duration::days(9));
    assert!(parse_span("30").is_err());
    assert!(parse_span("d").is_err());
    assert!(parse_span("3x").is_err());
    // Out of chrono's range: an error, not a panic.
    assert!(parse_span("99999999999999999d").is_err());
    assert!(parse_span("9223372036854775807y").is_err());
    assert!(parse_span("10000000000w10000000000w").is_err());
}

#[test]
fn gaps_of_weeks_count_only_periods_that_have_backups() {
    // Daily 3 over backups weeks apart keeps the three newest, not "the last 3 days".
    let p = KeepPolicy {
        daily: 3,
        ..Default::default()
    };
    let k = kept(
        &p,
        &[
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
        ],
    );
    assert_eq!(
        k,
        vec!["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"]
    );
}

#[test]
fn rules_are_independent_and_reasons_add_up() {
    let p = KeepPolicy {
        daily: 2,
        weekly: 2,
        monthly: 2,
        ..Default::default()
    };
    let plan = p.plan(
        &backups(&[
            "2026-01-20T00:00:00Z",
            "2026-02-10T00:00:00Z",
            "2026-02-16T00:00:00Z",
            "2026-02-17T00:00:00Z",
        ]),
        Utc::now(),
    );
    let reasons: Vec<(String, Vec<String>)> = plan.into_iter().map(|d| (d.id, d.reasons)).collect();
    assert_eq!(
        reasons,
        vec![
            (
                "2026-02-17T00:00:00Z".into(),
                vec!["daily 1/2".into(), "weekly 1/2".into(), "monthly 1/2".into()]
            ),
            ("2026-02-16T00:00:00Z".into(), vec!["daily 2/2".into()]),
            ("2026-02-10T00:00:00Z".into(), vec!["weekly 2/2".into()]),
            ("2026-01-20T00:00:00Z".into(), vec!["monthly 2/2".into()]),
        ]
    );
}

#[test]
fn dst_change_in_a_non_utc_zone() {
    // Europe/Berlin leaves summer time on 2026-10-25 at 03:00 local (01:00 UTC):
    // 00:30 UTC and 01:30 UTC are 02:30 CEST and 02:30 CET — two different
    // hours in UTC, one local hour label, but the same local day.
    let berlin = chrono_tz::Europe::Berlin;
    let hourly = KeepPolicy {
        hourly: 5,
        timezone: berlin,
        ..Default::default()
    };
    let times = ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"];
    let plan = hourly.plan(&backups(&times), Utc::now());
    let kept: Vec<_> = plan.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect();
    // Local hours 03:30, 02:30 (CET), 02:30 (CEST): the two 02:30 share an hour
    // label; the oldest is still kept, as the oldest backup with slots left.
    assert_eq!(kept, times.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(plan[2].reasons, vec!["oldest hourly"]);
    // Daily: 2026-10-24T23:30Z is the 25th in Berlin, the same day as the others.
    let daily = KeepPolicy {
        daily: 2,
        timezone: berlin,
        ..Default::default()
    };
    let plan = daily.plan(
        &backups(&["2026-10-24T21:30:00Z", "2026-10-24T22:30:00Z", "2026-10-25T02:30:00Z"]),
        Utc::now(),
    );
    assert_eq!(plan[0].reasons, vec!["daily 1/2"]);
    assert!(
        !plan[1].keep,
        "22:30Z is 00:30 local on the 25th: same day as the newest"
    );
    assert_eq!(plan[2].reasons, vec!["daily 2/2"], "21:30Z is 23:30 local on the 24th");
}

#[test]
fn backups_dated_in_the_future_are_just_the_newest() {
    let p = KeepPolicy {
        daily: 1,
        ..Default::default()
    };
    let plan = p.plan(
        &backups(&["2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z"]),
        at("2026-01-02T00:00:00Z"),
    );
    assert_eq!(plan[0].id, "2099-01-01T00:00:00Z");
    assert!(plan[0].keep && !plan[1].keep);
}

#[test]
fn within_and_counts_combine() {
    let p = KeepPolicy {
        within: Some(Duration::days(2)),
        monthly: 2,
        ..Default::default()
    };
    let plan = p.plan(
        &backups(&[
            "2026-01-15T00:00:00Z",
            "2026-02-10T00:00:00Z",
            "2026-02-20T00:00:00Z",
            "2026-02-21T00:00:00Z",
        ]),
        Utc::now(),
    );
    let reasons: Vec<_> = plan.iter().map(|d| d.reasons.join(",")).collect();
    assert_eq!(reasons, vec!["within 2d,monthly 1/2", "within 2d", "", "monthly 2/2"]);
}

#[test]
fn last_keeps_the_n_newest() {
    let p = KeepPolicy {
        last: 2,
        ..Default::default()
    };
    let k = kept(
        &p,
        &["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"],
    );
    assert_eq!(k, vec!["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn timeline() -> impl Strategy<Value = Vec<BackupSummary>> {
        // Up to 60 backups over ~3 years, some in the same hour or day.
        proptest::collection::vec(0i64..(3 * 365 * 24 * 4), 0..60).prop_map(|quarters| {
            quarters
                .into_iter()
                .enumerate()
                .map(|(i, q)| BackupSummary {
                    id: format!("b{i:03}"),
                    time: at("2024-01-01T00:00:00Z") + Duration::minutes(q * 15),
                })
                .collect()
        })
    }

    fn policy() -> impl Strategy<Value = KeepPolicy> {
        (
            0u32..4,
            0u32..4,
            0u32..8,
            0u32..5,
            0u32..13,
            0u32..3,
            proptest::option::of(1i64..40),
        )
            .prop_map(|(last, hourly, daily, weekly, monthly, yearly, within)| KeepPolicy {
                last,
                hourly,
                daily,
                weekly,
                monthly,
                yearly,
                within: within.map(Duration::days),
                timezone: chrono_tz::Europe::Berlin,
                ..KeepPolicy::default()
            })
    }

    fn keep_set(p: &KeepPolicy, b: &[BackupSummary]) -> Vec<String> {
        let mut k: Vec<String> = p
            .plan(b, Utc::now())
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.id)
            .collect();
        k.sort();
        k
    }

    proptest! {
        #[test]
        fn the_newest_backup_is_always_kept(p in policy(), b in timeline()) {
            let plan = p.plan(&b, Utc::now());
            prop_assert_eq!(plan.len(), b.len());
            if let Some(newest) = b.iter().max_by_key(|x| (x.time, x.id.clone())) {
                prop_assert!(plan.iter().any(|d| d.id == newest.id && d.keep));
            }
        }

        #[test]
        fn pruning_twice_equals_pruning_once(p in policy(), b in timeline()) {
            let once = keep_set(&p, &b);
            let survivors: Vec<BackupSummary> = b.iter().filter(|x| once.contains(&x.id)).cloned().collect();
            prop_assert_eq!(keep_set(&p, &survivors), once);
        }

        #[test]
        fn an_older_backup_never_evicts_a_newer_one(p in policy(), b in timeline()) {
            // Exception by design (restic): a backup kept only as "oldest <rule>"
            // stops being the oldest when an older one arrives.
            let Some(oldest) = b.iter().map(|x| x.time).min() else { return Ok(()) };
            let before = p.plan(&b, Utc::now());
            let mut more = b.clone();
            more.push(BackupSummary { id: "older".into(), time: oldest - Duration::days(1) });
            let after = keep_set(&p, &more);
            for d in before.iter().filter(|d| d.keep && !d.reasons.iter().all(|r| r.starts_with("oldest"))) {
                prop_assert!(after.contains(&d.id), "{} was evicted", d.id);
            }
        }

        #[test]
        fn no_rules_keep_everything_always(b in timeline()) {
            prop_assert_eq!(keep_set(&KeepPolicy::default(), &b).len(), b.len());
        }
    }
}
