//! Whether bytes in R's serialization format hold only what `plain_read`
//! reads, found by walking the items without allocating anything: a payload
//! that holds more (a closure among the globals of a task, a fitted model's
//! environment) goes to R's unserializer at once, rather than after
//! `plain_read` has built, and thrown away, every vector before it.
//!
//! It accepts exactly the grammar `plain_read` reads, and more strictly in
//! one place: an attribute's name must be a symbol.

use crate::ffi::sexptype::*;
use crate::plain::{HAS_ATTR, HAS_TAG, IS_OBJECT, MAX_DEPTH, NIL_ITEM};

struct Scan<'a> {
    bytes: &'a [u8],
}

/// Whether `body` (the bytes after R's header) is one plain item, and
/// nothing after it.
pub(crate) fn is_plain(body: &[u8]) -> bool {
    let mut scan = Scan { bytes: body };
    scan.item(0).is_some() && scan.bytes.is_empty()
}

impl Scan<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes = self.bytes.get(n..)?;
        Some(())
    }

    fn int(&mut self) -> Option<i32> {
        let (word, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(i32::from_ne_bytes(*word))
    }

    fn length(&mut self) -> Option<usize> {
        let len = self.int()?;
        if len >= 0 {
            return Some(len as usize);
        }
        if len != -1 {
            return None;
        }
        let upper = self.int()? as u32 as u64;
        let lower = self.int()? as u32 as u64;
        usize::try_from((upper << 32) | lower).ok()
    }

    fn item(&mut self, depth: usize) -> Option<i32> {
        if depth > MAX_DEPTH {
            return None;
        }
        let flags = self.int()?;
        self.item_of(flags, depth)
    }

    /// The item whose flags were read; its kind.
    fn item_of(&mut self, flags: i32, depth: usize) -> Option<i32> {
        let kind = flags & 0xff;
        if kind != CHARSXP && flags >> 12 != 0 {
            return None;
        }
        match kind {
            254 | 253 | 251 | 242 | 241 => {}
            SYMSXP => {
                let flags = self.int()?;
                if self.string(flags)? {
                    return None;
                }
            }
            LISTSXP | LANGSXP => self.pairlist(flags, depth)?,
            LGLSXP | INTSXP | REALSXP | CPLXSXP | RAWSXP | STRSXP | VECSXP | EXPRSXP => {
                let len = self.length()?;
                match kind {
                    STRSXP => {
                        for _ in 0..len {
                            let flags = self.int()?;
                            self.string(flags)?;
                        }
                    }
                    VECSXP | EXPRSXP => {
                        for _ in 0..len {
                            self.item(depth + 1)?;
                        }
                    }
                    _ => {
                        let width = match kind {
                            RAWSXP => 1,
                            REALSXP => 8,
                            CPLXSXP => 16,
                            _ => 4,
                        };
                        self.skip(len.checked_mul(width)?)?;
                    }
                }
                if flags & HAS_ATTR != 0 {
                    self.attributes(depth + 1)?;
                } else if flags & IS_OBJECT != 0 {
                    return None;
                }
            }
            _ => return None,
        }
        Some(kind)
    }

    fn pairlist(&mut self, mut flags: i32, depth: usize) -> Option<()> {
        loop {
            if flags & HAS_ATTR != 0 || flags >> 12 != 0 {
                return None;
            }
            if flags & HAS_TAG != 0 {
                self.item(depth + 1)?;
            }
            self.item(depth + 1)?;
            flags = self.int()?;
            let next = flags & 0xff;
            if next != LISTSXP && next != LANGSXP {
                self.item_of(flags, depth + 1)?;
                return Some(());
            }
        }
    }

    /// A string item whose flags were read: whether it is NA.
    fn string(&mut self, flags: i32) -> Option<bool> {
        if flags & 0xff != CHARSXP {
            return None;
        }
        let len = self.int()?;
        if len == -1 {
            return Some(true);
        }
        self.skip(usize::try_from(len).ok()?)?;
        Some(false)
    }

    fn attributes(&mut self, depth: usize) -> Option<()> {
        loop {
            let flags = self.int()?;
            if flags == NIL_ITEM {
                return Some(());
            }
            if flags != LISTSXP | HAS_TAG {
                return None;
            }
            if self.item(depth)? != SYMSXP {
                return None;
            }
            self.item(depth)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(items: &[i32]) -> Vec<u8> {
        items.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn a_double_vector_with_names_is_plain() {
        let mut body = words(&[REALSXP | HAS_ATTR, 1]);
        body.extend(1.5f64.to_ne_bytes());
        body.extend(words(&[LISTSXP | HAS_TAG, SYMSXP, CHARSXP, 5]));
        body.extend(b"names");
        body.extend(words(&[STRSXP, 1, CHARSXP, 1]));
        body.extend(b"a");
        body.extend(words(&[NIL_ITEM]));
        assert!(is_plain(&body));
        // cut short, or with bytes after it
        assert!(!is_plain(&body[..body.len() - 1]));
        body.push(0);
        assert!(!is_plain(&body));
    }

    #[test]
    fn an_attribute_named_by_anything_but_a_symbol_is_not() {
        let mut body = words(&[
            INTSXP | HAS_ATTR,
            0,
            LISTSXP | HAS_TAG,
            STRSXP,
            0,
            INTSXP,
            0,
        ]);
        body.extend(words(&[NIL_ITEM]));
        assert!(!is_plain(&body));
    }

    #[test]
    fn a_closure_after_a_long_vector_is_found_without_reading_the_vector() {
        let mut body = words(&[VECSXP, 2, RAWSXP, 1 << 20]);
        body.extend(vec![7u8; 1 << 20]);
        body.extend(words(&[3])); // CLOSXP
        assert!(!is_plain(&body));
    }

    #[test]
    fn lengths_beyond_the_input_are_not_plain() {
        assert!(!is_plain(&words(&[REALSXP, -1, i32::MAX, -1])));
        assert!(!is_plain(&words(&[STRSXP, 3, CHARSXP, 1 << 30])));
        assert!(!is_plain(&words(&[REALSXP, -7])));
    }
}
