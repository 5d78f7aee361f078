//! Money is an integer number of fen (0.01 yuan). Floats never carry money inside
//! lijian; yuan appear only where humans or merchants read and write them.

use std::fmt;

/// An amount in fen. Signed so that ledger rows can carry refunds and debits alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(pub i64);

/// Why a yuan string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("amount {0:?} is not a decimal number of yuan such as 9.5 or 12.34")]
    NotANumber(String),
    #[error("amount {0:?} has more than two decimals; the smallest unit is 0.01 yuan (1 fen)")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
    #[error("amount {0:?} must not be negative")]
    Negative(String),
}

impl Fen {
    /// Parses a yuan amount written by a person ("9.5", "12", "0.01"). Exact: no
    /// float is involved, so "0.29" is 29 fen and never 28.
    pub fn parse_yuan(text: &str) -> Result<Fen, MoneyError> {
        let trimmed = text.trim();
        let err_nan = || MoneyError::NotANumber(text.to_string());
        if trimmed.starts_with('-') {
            return Err(MoneyError::Negative(text.to_string()));
        }
        let (whole, frac) = match trimmed.split_once('.') {
            Some((w, f)) => (w, f),
            None => (trimmed, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(err_nan());
        }
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || !digits(frac) || (trimmed.contains('.') && frac.is_empty()) {
            return Err(err_nan());
        }
        if frac.len() > 2 {
            return Err(MoneyError::TooPrecise(text.to_string()));
        }
        let whole_value: i64 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| MoneyError::TooLarge(text.to_string()))? };
        let frac_value: i64 = format!("{frac:0<2}").parse().map_err(|_| err_nan())?;
        whole_value
            .checked_mul(100)
            .and_then(|v| v.checked_add(frac_value))
            .map(Fen)
            .ok_or_else(|| MoneyError::TooLarge(text.to_string()))
    }

    /// The amount as a JSON number of yuan (207 fen → 2.07). Exact for every amount
    /// below 2^53 fen because the shortest round-trip formatting of n/100 is used.
    pub fn to_yuan_json(self) -> serde_json::Value {
        if self.0 % 100 == 0 {
            serde_json::Value::from(self.0 / 100)
        } else {
            serde_json::Value::from(self.0 as f64 / 100.0)
        }
    }
}

impl fmt::Display for Fen {
    /// Yuan with two decimals, for people: "12.30".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yuan_exactly() {
        assert_eq!(Fen::parse_yuan("9.5"), Ok(Fen(950)));
        assert_eq!(Fen::parse_yuan("0.29"), Ok(Fen(29)));
        assert_eq!(Fen::parse_yuan("12"), Ok(Fen(1200)));
        assert_eq!(Fen::parse_yuan(".5"), Ok(Fen(50)));
        assert_eq!(Fen::parse_yuan("0"), Ok(Fen(0)));
        assert!(matches!(Fen::parse_yuan("1.234"), Err(MoneyError::TooPrecise(_))));
        assert!(matches!(Fen::parse_yuan("-1"), Err(MoneyError::Negative(_))));
        assert!(matches!(Fen::parse_yuan("abc"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Fen::parse_yuan("1."), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Fen::parse_yuan(""), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Fen::parse_yuan("99999999999999999999"), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn formats_for_json_and_people() {
        assert_eq!(Fen(207).to_yuan_json().to_string(), "2.07");
        assert_eq!(Fen(950).to_yuan_json().to_string(), "9.5");
        assert_eq!(Fen(1000).to_yuan_json().to_string(), "10");
        assert_eq!(Fen(1).to_yuan_json().to_string(), "0.01");
        assert_eq!(Fen(1230).to_string(), "12.30");
        assert_eq!(Fen(-5).to_string(), "-0.05");
    }
}

#[cfg(test)]
mod props;
