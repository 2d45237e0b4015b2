//! The `Decimal` number type of AWS IoT SQL, for the rules that turn an MQTT message into a
//! workflow input (MQTT message -> IoT SQL -> workflow input).
//!
//! AWS computes with Java `BigDecimal`s held to 34 significant digits (the IEEE 754
//! decimal128 context, rounding half to even) and a magnitude between 1E-999 and 9.999E999.
//! [`Dec`] is that number in 16 bytes: a mantissa of at most 34 digits and a power of ten,
//! kept without trailing zeros so that equal numbers have equal fields. Intermediate
//! results (a product of two mantissas, a scaled dividend) need up to 77 digits and live in
//! a small unsigned 256-bit integer, so no operation allocates.

use std::cmp::Ordering;
use std::fmt;

/// Significant digits of a decimal, as AWS documents.
const PRECISION: u32 = 34;
/// 10^34: the first mantissa that no longer fits the precision.
const MANTISSA_LIMIT: u128 = 10u128.pow(PRECISION);
/// The largest decimal exponent AWS admits (9.999...E999); smaller results flush to zero.
const MAX_ADJUSTED_EXPONENT: i64 = 999;

/// `m * 10^e`, with `|m| < 10^34` and no trailing zeros in `m` (zero is `0 * 10^0`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct Dec {
    m: i128,
    e: i32,
}

impl Dec {
    pub(super) const ZERO: Dec = Dec { m: 0, e: 0 };

    /// A whole number; more than 34 digits are rounded.
    pub(super) fn from_i128(i: i128) -> Dec {
        if i.unsigned_abs() < MANTISSA_LIMIT {
            Dec::normalized(i, 0)
        } else {
            round(i < 0, U256::from(i.unsigned_abs()), 0, false).unwrap_or(Dec::ZERO)
        }
    }

    /// The exact value a JSON number parsed as `f64` stands for, as its shortest decimal
    /// spelling: the payload `22.5` is the decimal 22.5, and `0.1` stays 0.1.
    pub(super) fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            return Some(Dec::from_i128(f as i128));
        }
        Dec::parse(&format!("{f:e}"))
    }

    /// Parses what AWS converts from a string: `^-?\d+(\.\d+)?((?i)E-?\d+)?$`.
    pub(super) fn parse(text: &str) -> Option<Dec> {
        let b = text.as_bytes();
        let mut i = 0;
        let neg = b.first() == Some(&b'-');
        if neg {
            i += 1;
        }
        let mut mag = U256::ZERO;
        let (mut kept, mut dropped, mut frac_len) = (0u32, 0i64, 0i64);
        let mut sticky = false;
        let mut digit = |d: u8, kept: &mut u32, dropped: &mut i64| {
            // 40 digits are enough to round to 34 correctly; the rest only decide ties.
            if *kept < 40 {
                if *kept > 0 || d != 0 {
                    mag = mag.mul_small(10).add_small(u64::from(d));
                    *kept += 1;
                }
            } else {
                *dropped += 1;
                sticky |= d != 0;
            }
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            digit(b[i] - b'0', &mut kept, &mut dropped);
            i += 1;
        }
        if i == start {
            return None;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                digit(b[i] - b'0', &mut kept, &mut dropped);
                frac_len += 1;
                i += 1;
            }
            if i == frac_start {
                return None;
            }
        }
        let mut exp: i64 = 0;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            let exp_neg = b.get(i) == Some(&b'-');
            if exp_neg {
                i += 1;
            }
            let exp_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                // Saturates: an absurd exponent is out of range either way.
                exp = (exp * 10 + i64::from(b[i] - b'0')).min(1 << 40);
                i += 1;
            }
            if i == exp_start {
                return None;
            }
            if exp_neg {
                exp = -exp;
            }
        }
        if i != b.len() {
            return None;
        }
        round(neg, mag, exp - frac_len + dropped, sticky)
    }

    fn normalized(mut m: i128, mut e: i32) -> Dec {
        if m == 0 {
            return Dec::ZERO;
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        Dec { m, e }
    }

    pub(super) fn is_zero(self) -> bool {
        self.m == 0
    }

    pub(super) fn is_integral(self) -> bool {
        self.e >= 0
    }

    pub(super) fn signum(self) -> i32 {
        self.m.signum() as i32
    }

    pub(super) fn neg(self) -> Dec {
        Dec { m: -self.m, e: self.e }
    }

    pub(super) fn abs(self) -> Dec {
        Dec { m: self.m.abs(), e: self.e }
    }

    /// The nearest `f64`, as Java's `BigDecimal.doubleValue` gives it.
    pub(super) fn to_f64(self) -> f64 {
        if self.m.unsigned_abs() < (1 << 53) && (-22..=22).contains(&self.e) {
            // Both factors are exact doubles, so one IEEE operation rounds correctly.
            let p = 10f64.powi(self.e.abs());
            return if self.e >= 0 { self.m as f64 * p } else { self.m as f64 / p };
        }
        format!("{}e{}", self.m, self.e).parse().unwrap_or(f64::NAN)
    }

    /// The whole number a decimal holds, if it is whole and fits.
    pub(super) fn to_i128_exact(self) -> Option<i128> {
        if self.e < 0 {
            return None;
        }
        10i128.checked_pow(self.e as u32).and_then(|p| self.m.checked_mul(p))
    }

    /// Drops the fraction (Java's rounding mode DOWN, towards zero), saturating at the
    /// bounds of `i128`.
    pub(super) fn trunc_i128(self) -> i128 {
        if self.e >= 0 {
            match 10i128.checked_pow(self.e as u32).and_then(|p| self.m.checked_mul(p)) {
                Some(v) => v,
                None if self.m < 0 => i128::MIN,
                None => i128::MAX,
            }
        } else if self.e < -38 {
            0
        } else {
            self.m / 10i128.pow((-self.e) as u32)
        }
    }

    /// The whole part and whether a fraction was dropped.
    fn split(self) -> (Dec, bool) {
        if self.e >= 0 {
            return (self, false);
        }
        if self.e < -38 {
            return (Dec::ZERO, self.m != 0);
        }
        let p = 10i128.pow((-self.e) as u32);
        (Dec::from_i128(self.m / p), self.m % p != 0)
    }

    /// Drops the fraction, towards zero.
    pub(super) fn trunc(self) -> Dec {
        self.split().0
    }

    pub(super) fn floor(self) -> Dec {
        match self.split() {
            (w, true) if self.m < 0 => w.sub(Dec::from_i128(1)).unwrap_or(w),
            (w, _) => w,
        }
    }

    pub(super) fn ceil(self) -> Dec {
        match self.split() {
            (w, true) if self.m > 0 => w.add(Dec::from_i128(1)).unwrap_or(w),
            (w, _) => w,
        }
    }

    /// To the nearest whole number, halves away from zero (`round(-1.5)` is -2 on AWS).
    pub(super) fn round_half_up(self) -> Dec {
        if self.e >= 0 {
            return self;
        }
        let half = Dec { m: if self.m < 0 { -5 } else { 5 }, e: -1 };
        self.add(half).map(|d| d.split().0).unwrap_or(self)
    }

    /// Keeps `places` digits after the point, dropping the rest (towards zero).
    pub(super) fn trunc_places(self, places: u32) -> Dec {
        let drop = -(self.e as i64) - i64::from(places);
        if drop <= 0 {
            self
        } else if drop > 38 {
            Dec::ZERO
        } else {
            Dec::normalized(self.m / 10i128.pow(drop as u32), -(places as i32))
        }
    }

    fn digits(self) -> u32 {
        digits_u128(self.m.unsigned_abs())
    }

    /// The exponent of the leading digit: 123.4 is 1.234E2, so 2.
    fn adjusted(self) -> i64 {
        i64::from(self.e) + i64::from(self.digits()) - 1
    }

    pub(super) fn add(self, other: Dec) -> Option<Dec> {
        if self.m == 0 {
            return Some(other);
        }
        if other.m == 0 {
            return Some(self);
        }
        let (big, small) = if self.e >= other.e { (self, other) } else { (other, self) };
        let shift = (i64::from(big.e) - i64::from(small.e)) as u32;
        if big.digits() + shift.min(100) > 76 {
            // `small` lies more than 40 digits below the last digit of `big`: it cannot
            // move a 34-digit result, and aligning the two would not fit 256 bits.
            return Some(big);
        }
        let a = U256::from(big.m.unsigned_abs()).mul_pow10(shift);
        let b = U256::from(small.m.unsigned_abs());
        let (neg, mag) = if (big.m < 0) == (small.m < 0) {
            (big.m < 0, a.add(b))
        } else if a >= b {
            (big.m < 0, a.sub(b))
        } else {
            (small.m < 0, b.sub(a))
        };
        round(neg, mag, i64::from(small.e), false)
    }

    pub(super) fn sub(self, other: Dec) -> Option<Dec> {
        self.add(other.neg())
    }

    pub(super) fn mul(self, other: Dec) -> Option<Dec> {
        let mag = U256::mul_u128(self.m.unsigned_abs(), other.m.unsigned_abs());
        round((self.m < 0) != (other.m < 0), mag, i64::from(self.e) + i64::from(other.e), false)
    }

    /// `None` for a division by zero.
    pub(super) fn div(self, other: Dec) -> Option<Dec> {
        if other.m == 0 {
            return None;
        }
        if self.m == 0 {
            return Some(Dec::ZERO);
        }
        // Scale the dividend so the quotient has at least 35 digits: one more than the
        // precision, and the remainder tells whether anything lies beyond.
        let (da, db) = (self.digits(), other.digits());
        let scale = (db + PRECISION + 1).saturating_sub(da);
        let n = U256::from(self.m.unsigned_abs()).mul_pow10(scale);
        let (q, r) = n.divrem(U256::from(other.m.unsigned_abs()));
        let exp = i64::from(self.e) - i64::from(other.e) - i64::from(scale);
        round((self.m < 0) != (other.m < 0), q, exp, !r.is_zero())
    }

    /// Java's `BigDecimal.remainder`: `self - other * trunc(self / other)`, with the sign of
    /// `self`. `None` for a division by zero.
    pub(super) fn rem(self, other: Dec) -> Option<Dec> {
        if other.m == 0 {
            return None;
        }
        let e = self.e.min(other.e);
        let (sa, sb) = ((self.e - e) as u32, (other.e - e) as u32);
        if self.digits() + sa > 76 || other.digits() + sb > 76 {
            // Operands some 40 orders of magnitude apart: doubles are as good as anything.
            return Dec::from_f64(self.to_f64() % other.to_f64());
        }
        let a = U256::from(self.m.unsigned_abs()).mul_pow10(sa);
        let b = U256::from(other.m.unsigned_abs()).mul_pow10(sb);
        let (_, r) = a.divrem(b);
        round(self.m < 0, r, i64::from(e), false)
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Dec) -> Ordering {
        let (sa, sb) = (self.m.signum(), other.m.signum());
        if sa != sb || sa == 0 {
            return sa.cmp(&sb);
        }
        let by_size = match self.adjusted().cmp(&other.adjusted()) {
            Ordering::Equal => {
                // Same leading exponent: the exponents differ by fewer than 34.
                let e = self.e.min(other.e);
                let a = U256::from(self.m.unsigned_abs()).mul_pow10((self.e - e) as u32);
                let b = U256::from(other.m.unsigned_abs()).mul_pow10((other.e - e) as u32);
                a.cmp(&b)
            }
            o => o,
        };
        if sa < 0 {
            by_size.reverse()
        } else {
            by_size
        }
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Dec) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Prints as Java's `BigDecimal.toString` does for plain magnitudes, and in scientific
/// notation below 1E-6 and at 35 digits or more. A whole decimal (only SQL version
/// 2015-10-08 keeps those) ends in `.0`, as the same number does in the JSON output.
impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.m == 0 {
            return f.write_str("0.0");
        }
        let digits = self.m.unsigned_abs().to_string();
        let n = digits.len() as i64;
        let sign = if self.m < 0 { "-" } else { "" };
        let adjusted = self.adjusted();
        if self.e >= 0 && adjusted < i64::from(PRECISION) {
            return write!(f, "{sign}{digits}{}.0", "0".repeat(self.e as usize));
        }
        if self.e < 0 && adjusted >= -6 {
            let point = n + i64::from(self.e);
            return if point > 0 {
                let (whole, frac) = digits.split_at(point as usize);
                write!(f, "{sign}{whole}.{frac}")
            } else {
                write!(f, "{sign}0.{}{digits}", "0".repeat((-point) as usize))
            };
        }
        let (lead, rest) = digits.split_at(1);
        let exp_sign = if adjusted >= 0 { "+" } else { "" };
        if rest.is_empty() {
            write!(f, "{sign}{lead}E{exp_sign}{adjusted}")
        } else {
            write!(f, "{sign}{lead}.{rest}E{exp_sign}{adjusted}")
        }
    }
}

fn digits_u128(v: u128) -> u32 {
    if v == 0 {
        1
    } else {
        v.ilog10() + 1
    }
}

/// Rounds `±mag * 10^exp` to 34 digits, half to even; `sticky` says that nonzero digits
/// were already cut below `mag`. `None` past the largest magnitude AWS admits.
fn round(neg: bool, mag: U256, mut exp: i64, mut sticky: bool) -> Option<Dec> {
    let d = mag.digits();
    let mut q = if d > PRECISION {
        let cut = d - PRECISION;
        let (q1, rest_nonzero) = mag.div_pow10(cut - 1);
        sticky |= rest_nonzero;
        let (q2, last) = q1.divrem_small(10);
        let mut q = q2.low();
        if last > 5 || (last == 5 && (sticky || q & 1 == 1)) {
            q += 1;
            if q == MANTISSA_LIMIT {
                q /= 10;
                exp += 1;
            }
        }
        exp += i64::from(cut);
        q
    } else {
        mag.low()
    };
    if q == 0 {
        return Some(Dec::ZERO);
    }
    while q % 10 == 0 {
        q /= 10;
        exp += 1;
    }
    let adjusted = exp + i64::from(digits_u128(q)) - 1;
    if adjusted > MAX_ADJUSTED_EXPONENT {
        return None;
    }
    if adjusted < -MAX_ADJUSTED_EXPONENT {
        return Some(Dec::ZERO);
    }
    let m = q as i128;
    Some(Dec { m: if neg { -m } else { m }, e: exp as i32 })
}

/// An unsigned 256-bit integer: just what decimal arithmetic needs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct U256 {
    // Field order makes the derived ordering numeric.
    hi: u128,
    lo: u128,
}

const LOW64: u128 = u64::MAX as u128;
const TEN19: u64 = 10_000_000_000_000_000_000;

impl U256 {
    const ZERO: U256 = U256 { hi: 0, lo: 0 };

    fn from(lo: u128) -> U256 {
        U256 { hi: 0, lo }
    }

    fn is_zero(self) -> bool {
        self.hi == 0 && self.lo == 0
    }

    /// The low 128 bits; callers know the value fits.
    fn low(self) -> u128 {
        self.lo
    }

    fn mul_u128(a: u128, b: u128) -> U256 {
        let (a1, a0) = (a >> 64, a & LOW64);
        let (b1, b0) = (b >> 64, b & LOW64);
        let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
        let mid = (p00 >> 64) + (p01 & LOW64) + (p10 & LOW64);
        U256 { hi: p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64), lo: (p00 & LOW64) | (mid << 64) }
    }

    /// Multiplies by a small factor; callers keep the product below 2^256.
    fn mul_small(self, k: u64) -> U256 {
        let low = U256::mul_u128(self.lo, u128::from(k));
        U256 { hi: self.hi.wrapping_mul(u128::from(k)).wrapping_add(low.hi), lo: low.lo }
    }

    fn mul_pow10(mut self, mut n: u32) -> U256 {
        while n >= 19 {
            self = self.mul_small(TEN19);
            n -= 19;
        }
        if n > 0 {
            self = self.mul_small(10u64.pow(n));
        }
        self
    }

    fn add_small(self, k: u64) -> U256 {
        self.add(U256::from(u128::from(k)))
    }

    fn add(self, o: U256) -> U256 {
        let (lo, carry) = self.lo.overflowing_add(o.lo);
        U256 { hi: self.hi.wrapping_add(o.hi).wrapping_add(u128::from(carry)), lo }
    }

    /// `self - o` for `self >= o`.
    fn sub(self, o: U256) -> U256 {
        let (lo, borrow) = self.lo.overflowing_sub(o.lo);
        U256 { hi: self.hi.wrapping_sub(o.hi).wrapping_sub(u128::from(borrow)), lo }
    }

    fn divrem_small(self, d: u64) -> (U256, u64) {
        let d = u128::from(d);
        let limbs = [self.hi >> 64, self.hi & LOW64, self.lo >> 64, self.lo & LOW64];
        let mut q = [0u128; 4];
        let mut rem = 0u128;
        for (i, limb) in limbs.iter().enumerate() {
            let cur = (rem << 64) | limb;
            q[i] = cur / d;
            rem = cur % d;
        }
        (U256 { hi: (q[0] << 64) | q[1], lo: (q[2] << 64) | q[3] }, rem as u64)
    }

    /// Divides by `10^n` and says whether the remainder is nonzero.
    fn div_pow10(mut self, mut n: u32) -> (U256, bool) {
        let mut nonzero = false;
        while n > 0 {
            let step = n.min(19);
            let (q, r) = self.divrem_small(10u64.pow(step));
            nonzero |= r != 0;
            self = q;
            n -= step;
        }
        (self, nonzero)
    }

    /// Long division, one bit at a time; only division and remainder of decimals use it.
    fn divrem(self, d: U256) -> (U256, U256) {
        if d.hi == 0 && d.lo <= LOW64 {
            let (q, r) = self.divrem_small(d.lo as u64);
            return (q, U256::from(u128::from(r)));
        }
        let mut q = U256::ZERO;
        let mut r = U256::ZERO;
        for i in (0..256).rev() {
            r = r.shl1();
            if self.bit(i) {
                r.lo |= 1;
            }
            if r >= d {
                r = r.sub(d);
                q.set_bit(i);
            }
        }
        (q, r)
    }

    fn shl1(self) -> U256 {
        U256 { hi: (self.hi << 1) | (self.lo >> 127), lo: self.lo << 1 }
    }

    fn bit(self, i: u32) -> bool {
        if i >= 128 {
            (self.hi >> (i - 128)) & 1 == 1
        } else {
            (self.lo >> i) & 1 == 1
        }
    }

    fn set_bit(&mut self, i: u32) {
        if i >= 128 {
            self.hi |= 1 << (i - 128);
        } else {
            self.lo |= 1 << i;
        }
    }

    fn digits(self) -> u32 {
        if self.hi == 0 {
            digits_u128(self.lo)
        } else {
            19 + self.divrem_small(TEN19).0.digits()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap_or_else(|| panic!("{s} is no decimal"))
    }

    #[test]
    fn parses_what_aws_converts_and_nothing_else() {
        assert_eq!(d("22.50"), Dec { m: 225, e: -1 });
        assert_eq!(d("-1.2"), Dec { m: -12, e: -1 });
        assert_eq!(d("5E-12"), Dec { m: 5, e: -12 });
        assert_eq!(d("5e3"), Dec { m: 5, e: 3 });
        assert_eq!(d("000"), Dec::ZERO);
        for bad in ["", "-", "1.", ".5", "1e", "1e+3", "+1", " 1", "1 ", "0x10", "1.2.3", "NaN"] {
            assert_eq!(Dec::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keeps_34_digits_rounding_half_to_even() {
        // 35 digits: the last one decides.
        assert_eq!(d("1234567890123456789012345678901234.5"), d("1234567890123456789012345678901234"));
        assert_eq!(d("1234567890123456789012345678901235.5"), d("1234567890123456789012345678901236"));
        assert_eq!(d("1234567890123456789012345678901234.51"), d("1234567890123456789012345678901235"));
        assert_eq!(d("0.12345678901234567890123456789012345"), d("0.1234567890123456789012345678901234"));
        assert_eq!(d("9999999999999999999999999999999999.5"), d("1E34"));
    }

    #[test]
    fn adds_and_subtracts_exactly_within_the_precision() {
        assert_eq!(d("0.1").add(d("0.2")), Some(d("0.3")));
        assert_eq!(d("1").sub(d("1")), Some(Dec::ZERO));
        assert_eq!(d("-2.5").add(d("1")), Some(d("-1.5")));
        assert_eq!(d("1E40").add(d("1")), Some(d("1E40")));
        assert_eq!(d("1").add(d("1E-40")), Some(d("1")));
        assert_eq!(d("1E-200").add(d("1E200")), Some(d("1E200")));
    }

    #[test]
    fn multiplies_and_divides_to_34_digits() {
        assert_eq!(d("1.5").mul(d("-4")), Some(d("-6")));
        assert_eq!(
            d("1").div(d("3")).map(|x| x.to_string()),
            Some("0.3333333333333333333333333333333333".into())
        );
        assert_eq!(
            d("2").div(d("3")).map(|x| x.to_string()),
            Some("0.6666666666666666666666666666666667".into())
        );
        assert_eq!(d("10").div(d("4")), Some(d("2.5")));
        assert_eq!(d("1").div(Dec::ZERO), None);
        let big = d("9999999999999999999999999999999999");
        assert_eq!(
            big.mul(big).map(|x| x.to_string()),
            Some("9.999999999999999999999999999999998E+67".into())
        );
        assert_eq!(
            big.div(d("0.0000000000000000000000000000000003")),
            Some(d("3.333333333333333333333333333333333E67"))
        );
        assert_eq!(d("9E999").mul(d("10")), None);
    }

    #[test]
    fn remainders_take_the_sign_of_the_dividend() {
        assert_eq!(d("8").rem(d("3")), Some(d("2")));
        assert_eq!(d("-8").rem(d("3")), Some(d("-2")));
        assert_eq!(d("5.5").rem(d("2")), Some(d("1.5")));
        assert_eq!(d("1").rem(Dec::ZERO), None);
    }

    #[test]
    fn compares_by_value() {
        assert!(d("10") > d("9.99"));
        assert!(d("-10") < d("-9.99"));
        assert!(d("0") > d("-1E-900"));
        assert_eq!(d("2.50").cmp(&d("2.5")), Ordering::Equal);
        assert!(d("1E5") > d("99999.9"));
    }

    #[test]
    fn rounds_to_whole_numbers_as_the_functions_say() {
        assert_eq!(d("1.2").ceil(), d("2"));
        assert_eq!(d("-1.2").ceil(), d("-1"));
        assert_eq!(d("-1.2").floor(), d("-2"));
        assert_eq!(d("-1.5").round_half_up(), d("-2"));
        assert_eq!(d("1.5").round_half_up(), d("2"));
        assert_eq!(d("-1.1").round_half_up(), d("-1"));
        assert_eq!(d("2.888").trunc_places(2), d("2.88"));
        assert_eq!(d("-2.7").trunc_i128(), -2);
        assert_eq!(d("-2.411E247").trunc_i128(), i128::MIN);
    }

    #[test]
    fn converts_from_and_to_doubles() {
        assert_eq!(Dec::from_f64(22.5), Some(d("22.5")));
        assert_eq!(Dec::from_f64(0.1), Some(d("0.1")));
        assert_eq!(Dec::from_f64(-122.3359976), Some(d("-122.3359976")));
        assert_eq!(Dec::from_f64(1e300), Some(d("1E300")));
        assert_eq!(Dec::from_f64(f64::NAN), None);
        assert_eq!(d("0.1").to_f64(), 0.1);
        assert_eq!(d("1.5E-300").to_f64(), 1.5e-300);
    }

    #[test]
    fn prints_like_java() {
        assert_eq!(d("2.5").to_string(), "2.5");
        assert_eq!(d("-0.001").to_string(), "-0.001");
        assert_eq!(d("0.000001").to_string(), "0.000001");
        assert_eq!(d("0.0000001").to_string(), "1E-7");
        assert_eq!(d("1.25E-9").to_string(), "1.25E-9");
        assert_eq!(d("10").to_string(), "10.0");
        assert_eq!(
            d("1234567890123456789012345678901234").to_string(),
            "1234567890123456789012345678901234.0"
        );
        assert_eq!(
            d("12345678901234567890123456789012345").to_string(),
            "1.234567890123456789012345678901234E+34"
        );
    }
}
