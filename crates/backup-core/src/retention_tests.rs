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
        &backups(&[
            "2026-01-01T01:00:00Z",
            "2026-01-01T05:00:00Z",
            "2026-01-02T01:00:00Z",
        ]),
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
        &[
            "2024-12-23T12:00:00Z",
            "2024-12-30T12:00:00Z",
            "2025-01-01T12:00:00Z",
        ],
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
    let plan = p.plan(
        &backups(&["2026-03-07T23:30:00Z", "2026-03-08T00:30:00Z"]),
        Utc::now(),
    );
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
        &[
            "2026-01-01T00:00:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-06T00:00:00Z",
        ],
    );
    assert_eq!(k, vec!["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"]);
}

#[test]
fn no_rules_keep_everything() {
    let p = KeepPolicy::default();
    assert_eq!(
        kept(&p, &["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]).len(),
        2
    );
}

#[test]
fn spans_parse() {
    assert_eq!(parse_span("30d").unwrap(), Duration::days(30));
    assert_eq!(parse_span("1w2d").unwrap(), Duration::days(9));
    assert!(parse_span("30").is_err());
    assert!(parse_span("d").is_err());
    assert!(parse_span("3x").is_err());
}
