//! Resource quantities (`100m`, `1.5Gi`, `2e3`) read exactly, rounded up the way
//! apimachinery's `Quantity.Value()` and `MilliValue()` round: what cgroup settings and the
//! downward API are computed from. Floats would turn `0.1` CPU into 101 millicores.

/// `q` as a whole number, rounded up (`Value()`); `None` if it is not a quantity or does
/// not fit.
pub fn value(q: &str) -> Option<i64> {
    scaled_ceil(q, 0)
}

/// `q` in thousandths, rounded up (`MilliValue()`).
pub fn milli_value(q: &str) -> Option<i64> {
    scaled_ceil(q, 3)
}

/// `ceil(q × 10^scale)`.
fn scaled_ceil(q: &str, scale: i32) -> Option<i64> {
    let q = q.trim();
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(end);
    let (negative, number) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    if negative {
        mantissa = -mantissa;
    }
    let mut exponent = scale - i32::try_from(fraction.len()).ok()?;
    let binary: u32 = match suffix {
        "Ki" => 1,
        "Mi" => 2,
        "Gi" => 3,
        "Ti" => 4,
        "Pi" => 5,
        "Ei" => 6,
        _ => 0,
    };
    if binary == 0 {
        exponent += match suffix {
            "" => 0,
            "n" => -9,
            "u" => -6,
            "m" => -3,
            "k" => 3,
            "M" => 6,
            "G" => 9,
            "T" => 12,
            "P" => 15,
            "E" => 18,
            e if e.starts_with(['e', 'E']) => e[1..].parse::<i32>().ok()?,
            _ => return None,
        };
    }
    mantissa = mantissa.checked_mul(1i128.checked_shl(10 * binary)?)?;
    let result = if exponent >= 0 {
        mantissa.checked_mul(10i128.checked_pow(exponent.unsigned_abs())?)?
    } else {
        match 10i128.checked_pow(exponent.unsigned_abs()) {
            // Rounds toward positive infinity, as apimachinery does.
            Some(divisor) => {
                let quotient = mantissa.div_euclid(divisor);
                quotient + i128::from(mantissa.rem_euclid(divisor) != 0)
            }
            None => i128::from(mantissa > 0),
        }
    };
    i64::try_from(result).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_read_as_millicores_rounded_up() {
        assert_eq!(milli_value("100m"), Some(100));
        assert_eq!(milli_value("0.1"), Some(100));
        assert_eq!(milli_value("2"), Some(2000));
        assert_eq!(milli_value("1.5"), Some(1500));
        assert_eq!(milli_value("1500u"), Some(2));
        assert_eq!(milli_value("1n"), Some(1));
        assert_eq!(milli_value("0"), Some(0));
    }

    #[test]
    fn memory_quantities_read_as_bytes_rounded_up() {
        assert_eq!(value("32Mi"), Some(32 << 20));
        assert_eq!(value("1.5Gi"), Some(3 << 29));
        assert_eq!(value("128M"), Some(128_000_000));
        assert_eq!(value("1k"), Some(1000));
        assert_eq!(value("2e3"), Some(2000));
        assert_eq!(value("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(value("500m"), Some(1));
        assert_eq!(value("-500m"), Some(0));
    }

    #[test]
    fn garbage_is_not_a_quantity() {
        assert_eq!(value(""), None);
        assert_eq!(value("Mi"), None);
        assert_eq!(value("12XB"), None);
        assert_eq!(value("1.2.3"), None);
        assert_eq!(value("99Ei"), None);
    }
}
