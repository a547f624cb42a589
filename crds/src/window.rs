//! Service windows: the `Mon-Fri 08:00-17:00` syntax of service hours and monitoring windows.
//!
//! A window is a day or a forward day range (Mon..Sun) and a local wall-clock time range on each of
//! those days. This module only parses and prints; turning windows into instants in a time zone
//! (across daylight-saving changes) is the SLA engine's job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A day of the week, Monday first (ISO 8601 order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    /// Monday is 0, Sunday is 6.
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Option<Day> {
        Day::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Day::Mon => "Mon",
            Day::Tue => "Tue",
            Day::Wed => "Wed",
            Day::Thu => "Thu",
            Day::Fri => "Fri",
            Day::Sat => "Sat",
            Day::Sun => "Sun",
        }
    }
}

/// One window: `first..=last` days, from `start` to `end` minutes after local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub first: Day,
    pub last: Day,
    /// Minutes after local midnight, 0..=1439.
    pub start_minute: u16,
    /// Minutes after local midnight, 1..=1440 (24:00 is the end of the day).
    pub end_minute: u16,
}

/// Why a window string was refused; the message is meant for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WindowError(pub String);

const SYNTAX: &str =
    "expected a day or day range and a time range, such as \"Mon-Fri 08:00-17:00\"";

impl Window {
    /// True when `day` lies in this window's day range.
    pub fn covers_day(&self, day: Day) -> bool {
        self.first <= day && day <= self.last
    }

    /// Whole minutes the window is open per week.
    pub fn minutes_per_week(&self) -> u32 {
        let days = (self.last.index() - self.first.index() + 1) as u32;
        days * u32::from(self.end_minute - self.start_minute)
    }
}

fn parse_clock(s: &str, what: &str) -> Result<u16, WindowError> {
    let bad = || WindowError(format!("{what} time {s:?} is not a valid HH:MM time"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    // Two digits each, as the pattern has it ("+8" would parse as a number).
    if h.len() != 2 || m.len() != 2 || !h.chars().chain(m.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(WindowError(format!(
            "{what} time {s:?} is out of range (00:00 to 24:00)"
        )));
    }
    Ok(h * 60 + m)
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Exactly one space between days and times, nothing around them: the CRD's
        // WINDOW_PATTERN says so, and a tab or a trailing blank the API server refuses must not
        // pass `regie validate`.
        let (days, times) = s
            .split_once(' ')
            .filter(|(d, t)| {
                !d.is_empty()
                    && !t.is_empty()
                    && ![d, t].iter().any(|p| p.contains(char::is_whitespace))
            })
            .ok_or_else(|| WindowError(format!("{s:?}: {SYNTAX}")))?;
        let (first, last) = match days.split_once('-') {
            Some((a, b)) => (a, b),
            None => (days, days),
        };
        let day = |d: &str| {
            Day::parse(d).ok_or_else(|| {
                WindowError(format!(
                    "{s:?}: unknown day {d:?} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
                ))
            })
        };
        let (first, last) = (day(first)?, day(last)?);
        if last < first {
            return Err(WindowError(format!(
                "{s:?}: day range {days} must run forward from Mon to Sun"
            )));
        }
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| WindowError(format!("{s:?}: {SYNTAX}")))?;
        let start_minute =
            parse_clock(start, "start").map_err(|e| WindowError(format!("{s:?}: {e}")))?;
        let end_minute = parse_clock(end, "end").map_err(|e| WindowError(format!("{s:?}: {e}")))?;
        if start_minute == 24 * 60 {
            return Err(WindowError(format!(
                "{s:?}: start time 24:00 leaves no time in the day"
            )));
        }
        if end_minute <= start_minute {
            return Err(WindowError(format!(
                "{s:?}: end time {end} must be after start time {start}"
            )));
        }
        Ok(Window {
            first,
            last,
            start_minute,
            end_minute,
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first.as_str())?;
        } else {
            write!(f, "{}-{}", self.first.as_str(), self.last.as_str())?;
        }
        write!(
            f,
            " {:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The regular expression the CRD schema uses. The parser above accepts nothing this refuses
/// (the same single space, days and digits) and is stricter within it (ranges, order).
pub const WINDOW_PATTERN: &str = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(-(Mon|Tue|Wed|Thu|Fri|Sat|Sun))? ([01][0-9]|2[0-4]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$";

/// The monitoring windows of a service level: `none`, `12x5`, `24x7`, or comma-separated windows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Monitoring {
    None,
    /// Mon-Fri 07:00-19:00.
    TwelveByFive,
    /// Every minute of the week.
    TwentyFourBySeven,
    Windows(Vec<Window>),
}

impl Monitoring {
    /// The windows this setting stands for; empty for `none`.
    pub fn windows(&self) -> Vec<Window> {
        match self {
            Monitoring::None => vec![],
            Monitoring::TwelveByFive => vec![Window {
                first: Day::Mon,
                last: Day::Fri,
                start_minute: 7 * 60,
                end_minute: 19 * 60,
            }],
            Monitoring::TwentyFourBySeven => vec![Window {
                first: Day::Mon,
                last: Day::Sun,
                start_minute: 0,
                end_minute: 24 * 60,
            }],
            Monitoring::Windows(w) => w.clone(),
        }
    }
}

impl FromStr for Monitoring {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "none" | "" => Ok(Monitoring::None),
            "12x5" => Ok(Monitoring::TwelveByFive),
            "24x7" => Ok(Monitoring::TwentyFourBySeven),
            list => list
                .split(',')
                .map(|w| w.trim().parse())
                .collect::<Result<Vec<Window>, _>>()
                .map(Monitoring::Windows)
                .map_err(|e| WindowError(format!("{e}; or use none, 12x5 or 24x7"))),
        }
    }
}

impl fmt::Display for Monitoring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Monitoring::None => f.write_str("none"),
            Monitoring::TwelveByFive => f.write_str("12x5"),
            Monitoring::TwentyFourBySeven => f.write_str("24x7"),
            Monitoring::Windows(ws) => {
                let parts: Vec<String> = ws.iter().map(Window::to_string).collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Result<Window, WindowError> {
        s.parse()
    }

    #[test]
    fn parses_the_source_tables_windows() {
        let bronze = w("Mon-Fri 08:00-17:00").unwrap();
        assert_eq!((bronze.first, bronze.last), (Day::Mon, Day::Fri));
        assert_eq!((bronze.start_minute, bronze.end_minute), (480, 1020));
        assert_eq!(bronze.minutes_per_week(), 5 * 9 * 60);
        let sat = w("Sat 09:00-13:00").unwrap();
        assert_eq!((sat.first, sat.last), (Day::Sat, Day::Sat));
        let all = w("Mon-Sun 00:00-24:00").unwrap();
        assert_eq!(all.minutes_per_week(), 7 * 24 * 60);
        assert_eq!(all.to_string(), "Mon-Sun 00:00-24:00");
        assert_eq!(sat.to_string(), "Sat 09:00-13:00");
    }

    #[test]
    fn refuses_bad_windows_with_a_reason() {
        let e = w("Mon-Fri 25:00-17:00").unwrap_err().0;
        assert!(e.contains("start time \"25:00\" is out of range"), "{e}");
        let e = w("Mon-Fri 17:00-08:00").unwrap_err().0;
        assert!(
            e.contains("end time 08:00 must be after start time 17:00"),
            "{e}"
        );
        let e = w("Mon-Fri 08:00-08:00").unwrap_err().0;
        assert!(e.contains("must be after"), "{e}");
        let e = w("Fri-Mon 08:00-17:00").unwrap_err().0;
        assert!(e.contains("must run forward"), "{e}");
        let e = w("Mo-Fr 08:00-17:00").unwrap_err().0;
        assert!(e.contains("unknown day \"Mo\""), "{e}");
        assert!(w("Mon-Fri 8:00-17:00").is_err());
        assert!(w("Mon-Fri 08:60-17:00").is_err());
        assert!(w("Mon-Fri 24:00-24:00").is_err());
        assert!(w("Mon-Fri 08:00-24:30").is_err());
        assert!(w("Mon-Fri").is_err());
        assert!(w("Mon-Fri 08:00-17:00 extra").is_err());
        assert!(w("").is_err());
    }

    /// What the API server refuses (WINDOW_PATTERN) `regie validate` refuses too.
    #[test]
    fn accepts_no_more_than_the_crd_pattern() {
        for bad in [
            "Mon-Fri\t08:00-17:00",
            " Sat 09:00-12:00 ",
            "Sat 09:00-12:00 ",
            " Sat 09:00-12:00",
            "Mon-Fri  08:00-17:00",
            "Mon-Fri\u{a0}08:00-17:00",
            "Mon-Fri 08:00-17:00\n",
            "Mon-Fri +8:00-17:00",
            "Mon-Fri 08:+0-17:00",
            "mon-fri 08:00-17:00",
        ] {
            assert!(w(bad).is_err(), "{bad:?}");
        }
        assert!(w("Mon-Fri 08:00-17:00").is_ok());
    }

    #[test]
    fn monitoring_presets_and_lists() {
        assert_eq!("none".parse::<Monitoring>().unwrap().windows(), vec![]);
        assert_eq!(
            "12x5".parse::<Monitoring>().unwrap().windows()[0].to_string(),
            "Mon-Fri 07:00-19:00"
        );
        assert_eq!(
            "24x7".parse::<Monitoring>().unwrap().windows()[0].minutes_per_week(),
            10080
        );
        let m: Monitoring = "Mon-Fri 07:00-22:00, Sat 08:00-12:00".parse().unwrap();
        assert_eq!(m.windows().len(), 2);
        assert_eq!(m.to_string(), "Mon-Fri 07:00-22:00, Sat 08:00-12:00");
        assert!("always".parse::<Monitoring>().is_err());
    }

    #[test]
    fn serde_roundtrip() {
        let x: Window = serde_json::from_str("\"Mon-Sat 08:00-22:00\"").unwrap();
        assert_eq!(
            serde_json::to_string(&x).unwrap(),
            "\"Mon-Sat 08:00-22:00\""
        );
        assert!(serde_json::from_str::<Window>("\"Mon-Sat 22:00-08:00\"").is_err());
    }
}
