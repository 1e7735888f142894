//! Waivers: findings a project accepts for a while, each with a reason and an expiry date.
//!
//! An active waiver (its `expires` day not yet past, in UTC) takes the findings it matches out
//! of the verdict; they are still reported, as waived, with the reason. A waiver past its
//! expiry waives nothing and is itself a finding, `config-waiver-expired` (warn), shown in the
//! section of the rule it waived: the decision is due again.

use super::Config;
use crate::report::{Waived, WaiverNote};
use crate::rules::{Finding, RuleSet, Severity};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The id of the finding an expired waiver makes.
pub const EXPIRED: &str = "config-waiver-expired";

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// A valid date, or `None` (2027-02-30 is not one).
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (1..=days)
            .contains(&day)
            .then_some(Date { year, month, day })
    }

    /// `YYYY-MM-DD`, exactly.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = i32::try_from(digits(0..4)?).ok()?;
        Date::new(year, digits(5..7)?, digits(8..10)?)
    }

    /// The date `days` days after 1970-01-01 (Howard Hinnant's civil_from_days).
    pub fn from_unix_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Today in UTC.
pub fn today() -> Date {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Date::from_unix_days(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// One `[[waiver]]`.
#[derive(Debug, Clone)]
pub struct Waiver {
    pub rule: super::Setting<String>,
    /// The item it is limited to, as the report names it ("GPU 0", "environment .venv"), with
    /// or without the part in parentheses; `None` waives the rule everywhere.
    pub subject: Option<String>,
    pub reason: String,
    /// The last day it applies.
    pub expires: Date,
    pub owner: Option<String>,
    /// The line of its `[[waiver]]` header.
    pub line: usize,
}

impl Waiver {
    /// Whether it covers `finding`.
    pub fn matches(&self, finding: &Finding) -> bool {
        if finding.rule != self.rule.value {
            return false;
        }
        let Some(want) = &self.subject else {
            return true;
        };
        match &finding.subject {
            Some(s) => {
                s == want
                    || s.strip_prefix(want.as_str())
                        .is_some_and(|rest| rest.starts_with(" ("))
            }
            None => false,
        }
    }

    pub fn is_active(&self, today: Date) -> bool {
        today <= self.expires
    }

    /// "persistence-mode-off on GPU 0" or "persistence-mode-off".
    fn what(&self) -> String {
        match &self.subject {
            Some(s) => format!("{} on {s}", self.rule.value),
            None => self.rule.value.clone(),
        }
    }
}

impl Config {
    /// Split `findings` into those that count and those an active waiver covers, and add a
    /// `config-waiver-expired` finding for each waiver past its date.
    pub fn apply_waivers(
        &self,
        findings: Vec<Finding>,
        rules: &RuleSet,
        today: Date,
    ) -> (Vec<Finding>, Vec<Waived>) {
        let mut kept = Vec::new();
        let mut waived = Vec::new();
        for finding in findings {
            let waiver = self
                .waivers
                .iter()
                .find(|w| w.is_active(today) && w.matches(&finding));
            match waiver {
                Some(w) => waived.push(Waived {
                    finding,
                    waiver: self.note(w),
                }),
                None => kept.push(finding),
            }
        }
        for w in self.waivers.iter().filter(|w| !w.is_active(today)) {
            kept.push(self.expired(w, rules));
        }
        // Errors first, as evaluation sorted them; the stable sort keeps the rest in order.
        kept.sort_by_key(|f| std::cmp::Reverse(f.severity));
        (kept, waived)
    }

    fn note(&self, w: &Waiver) -> WaiverNote {
        WaiverNote {
            reason: w.reason.clone(),
            expires: w.expires.to_string(),
            owner: w.owner.clone(),
            source: format!("{}:{}", self.name, w.line),
        }
    }

    fn expired(&self, w: &Waiver, rules: &RuleSet) -> Finding {
        let category = rules
            .get(&w.rule.value)
            .map_or("host", |r| r.category.as_str());
        let mut evidence = vec![format!("reason given: {}", w.reason)];
        evidence.extend(w.owner.as_ref().map(|o| format!("owner: {o}")));
        Finding {
            rule: EXPIRED.to_string(),
            severity: Severity::Warn,
            category: category.to_string(),
            scope: "host".to_string(),
            subject: Some(format!("waiver {}:{}", self.name, w.line)),
            title: format!("The waiver for {} expired on {}", w.what(), w.expires),
            explain: format!(
                "The waiver at {}:{} accepted {} until {}, so it no longer waives anything and \
                 those findings count again. Fix what it waived, or renew the waiver with a new \
                 date and a reason that still holds.",
                self.name,
                w.line,
                w.what(),
                w.expires
            ),
            evidence,
            fix: None,
            consequences: Vec::new(),
            environment: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly_and_count_days() {
        assert_eq!(Date::parse("2027-01-31"), Date::new(2027, 1, 31));
        assert!(Date::parse("2027-02-29").is_none());
        assert!(Date::parse("2028-02-29").is_some());
        assert!(Date::parse("2027-1-31").is_none());
        assert!(Date::parse("2027-13-01").is_none());
        assert!(Date::parse("２０２７-01-31").is_none());
        assert_eq!(Date::from_unix_days(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_unix_days(19_723).to_string(), "2024-01-01");
        assert_eq!(Date::from_unix_days(20_513).to_string(), "2026-03-01");
        assert!(today() > Date::new(2025, 1, 1).unwrap());
    }

    fn finding(rule: &str, subject: Option<&str>) -> Finding {
        Finding {
            rule: rule.to_string(),
            severity: Severity::Warn,
            category: "gpu".to_string(),
            scope: "gpu".to_string(),
            subject: subject.map(str::to_string),
            title: String::new(),
            explain: String::new(),
            evidence: Vec::new(),
            fix: None,
            consequences: Vec::new(),
            environment: None,
        }
    }

    #[test]
    fn subjects_match_with_or_without_their_details() {
        let w = Waiver {
            rule: super::super::Setting {
                value: "persistence-mode-off".to_string(),
                at: 0,
            },
            subject: Some("GPU 1".to_string()),
            reason: "r".to_string(),
            expires: Date::new(2030, 1, 1).unwrap(),
            owner: None,
            line: 1,
        };
        assert!(w.matches(&finding(
            "persistence-mode-off",
            Some("GPU 1 (NVIDIA H100)")
        )));
        assert!(w.matches(&finding("persistence-mode-off", Some("GPU 1"))));
        assert!(!w.matches(&finding(
            "persistence-mode-off",
            Some("GPU 10 (NVIDIA H100)")
        )));
        assert!(!w.matches(&finding("persistence-mode-off", None)));
        assert!(!w.matches(&finding("ecc-errors", Some("GPU 1 (NVIDIA H100)"))));
        assert!(w.is_active(Date::new(2030, 1, 1).unwrap()));
        assert!(!w.is_active(Date::new(2030, 1, 2).unwrap()));
    }
}
