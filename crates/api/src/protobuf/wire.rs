//! The protobuf wire format, read from a byte slice: varints, keys, length-delimited fields
//! and skipping. Lengths are checked against the remaining input before anything is sliced, so
//! a hostile length prefix can neither panic nor allocate.

use super::ProtoError;

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
pub(super) const FIXED32: u8 = 5;

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtoError::Truncated);
            };
            self.pos += 1;
            // The tenth byte holds bit 63 only.
            if i == 9 && b > 1 {
                return Err(ProtoError::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::VarintOverflow)
    }

    /// The next key: (field number, wire type).
    pub fn key(&mut self) -> Result<(u32, u8), ProtoError> {
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) || wire_type > FIXED32 {
            return Err(ProtoError::InvalidKey(key));
        }
        Ok((field as u32, wire_type))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(ProtoError::Truncated)?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A length-delimited payload.
    pub fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| ProtoError::Truncated)?;
        self.take(len)
    }

    pub fn fixed64(&mut self) -> Result<u64, ProtoError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn fixed32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// Skips the value of a field of `wire_type`; groups are skipped whole, to `depth_left`
    /// levels of nesting.
    pub fn skip(&mut self, field: u32, wire_type: u8, depth_left: usize) -> Result<(), ProtoError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.fixed32().map(drop),
            START_GROUP => {
                if depth_left == 0 {
                    return Err(ProtoError::TooDeep);
                }
                loop {
                    let (f, wt) = self.key()?;
                    if wt == END_GROUP {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(ProtoError::InvalidKey(u64::from(f) << 3 | u64::from(wt)))
                        };
                    }
                    self.skip(f, wt, depth_left - 1)?;
                }
            }
            _ => Err(ProtoError::InvalidKey(
                u64::from(field) << 3 | u64::from(wire_type),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_up_to_64_bits() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
    }

    #[test]
    fn overlong_or_truncated_varints_are_errors() {
        let over = [0xff; 10];
        assert_eq!(Reader::new(&over).varint(), Err(ProtoError::VarintOverflow));
        assert_eq!(
            Reader::new(&[0x80, 0x80]).varint(),
            Err(ProtoError::Truncated)
        );
    }

    #[test]
    fn a_length_beyond_the_input_is_truncation_not_allocation() {
        // Length 2^63.
        let body = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(Reader::new(&body).bytes(), Err(ProtoError::Truncated));
    }

    #[test]
    fn field_zero_and_reserved_wire_types_are_invalid_keys() {
        assert!(matches!(
            Reader::new(&[0x02]).key(),
            Err(ProtoError::InvalidKey(_))
        ));
        assert!(matches!(
            Reader::new(&[0x0e]).key(),
            Err(ProtoError::InvalidKey(_))
        ));
    }

    #[test]
    fn groups_are_skipped_whole() {
        // Field 1 start group, inner field 2 varint 5, field 1 end group, then field 3 varint.
        let mut r = Reader::new(&[0x0b, 0x10, 0x05, 0x0c, 0x18, 0x01]);
        let (f, wt) = r.key().unwrap();
        r.skip(f, wt, 10).unwrap();
        assert_eq!(r.key(), Ok((3, VARINT)));
    }
}
