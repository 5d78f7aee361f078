//! Property tests for the yuan parser: it is the one place where text becomes
//! money, so it is checked against an independent reading of the same text.

use proptest::prelude::*;

use super::{Fen, MoneyError};

/// Reads "W", "W.F", ".F" as fen with integer arithmetic written differently from
/// the parser (digit by digit), so a shared mistake is unlikely.
fn reference_fen(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut fen: i64 = 0;
    for d in whole.bytes() {
        fen = fen.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    fen = fen.checked_mul(100)?;
    let frac_fen = match frac.as_bytes() {
        [] => 0,
        [a] => i64::from(a - b'0') * 10,
        [a, b] => i64::from(a - b'0') * 10 + i64::from(b - b'0'),
        _ => return None,
    };
    fen.checked_add(frac_fen)
}

proptest! {
    /// What we print for people parses back to the same amount.
    #[test]
    fn printed_amounts_parse_back(fen in 0i64..=i64::MAX / 100) {
        prop_assert_eq!(Fen::parse_yuan(&Fen(fen).to_string()), Ok(Fen(fen)));
    }

    /// Well-formed decimals are read exactly (no float), surrounding spaces ignored.
    #[test]
    fn decimals_are_read_exactly(text in "[0-9]{1,15}(\\.[0-9]{1,2})?", pad in " {0,2}") {
        let padded = format!("{pad}{text}{pad}");
        prop_assert_eq!(Fen::parse_yuan(&padded), Ok(Fen(reference_fen(&text).expect("fits"))));
    }

    /// Three or more decimals are refused as too precise, never rounded.
    #[test]
    fn more_than_two_decimals_are_refused(whole in "[0-9]{1,6}", frac in "[0-9]{3,8}") {
        let text = format!("{whole}.{frac}");
        prop_assert_eq!(Fen::parse_yuan(&text), Err(MoneyError::TooPrecise(text)));
    }

    /// Any text at all: no panic, and whatever is accepted agrees with the reference
    /// reading and is never negative.
    #[test]
    fn arbitrary_text_is_accepted_only_when_it_is_a_decimal(text in "\\PC{0,24}|[-+.0-9 e]{0,24}") {
        if let Ok(Fen(fen)) = Fen::parse_yuan(&text) {
            prop_assert!(fen >= 0);
            prop_assert_eq!(reference_fen(text.trim()), Some(fen));
        }
    }
}
