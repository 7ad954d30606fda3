//! A bounded reader of MAT-files in the level 5 format (MATLAB v5 to v7, compressed or not):
//! the struct arrays of `cars_annos.mat` and nothing more.
//!
//! matrw writes these files (see [`super::cars196::write_cars_annotations`]) but does not read
//! untrusted ones safely: it reserves whatever a length field claims (4 GiB for a name or a
//! char array whose tag says 4 GiB), inflates a compressed variable without limit, reads past a
//! matrix's declared size when its dimensions claim more elements, and panics (`unwrap`,
//! division by zero, arithmetic overflow) on many malformed inputs. This reader checks every
//! length against the bytes that hold it, inflates at most [`MAX_INFLATED`] bytes, never
//! recurses below a struct's fields, and allocates only for what it has read.
//!
//! The format: a 128-byte header (text, subsystem offset, version, endian indicator `IM` or
//! `MI`), then data elements, each an 8-byte tag (type, byte count) and its data padded to 8
//! bytes, or a 4-byte tag and up to 4 bytes of data (the "small" format). A variable is a
//! `miMATRIX` element (flags, dimensions, name, then class-specific sub-elements) or a
//! `miCOMPRESSED` one holding a zlib-compressed `miMATRIX`.

use std::io::Read;

/// The most bytes all compressed variables of a file may inflate to together (the original
/// `cars_annos.mat` inflates to about 7 MiB).
pub(crate) const MAX_INFLATED: usize = 256 << 20;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

const MX_STRUCT: u8 = 2;
const MX_CHAR: u8 = 4;
/// `mxDOUBLE_CLASS` ..= `mxUINT64_CLASS`: the numeric classes (logical arrays are uint8).
const MX_NUMERIC: std::ops::RangeInclusive<u8> = 6..=15;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatError {
    /// The file is not a level 5 MAT-file, or is corrupt: what is wrong.
    Corrupt(String),
    /// No variable has the name asked for.
    Missing,
    /// The variable is not a struct array.
    NotStruct,
}

fn corrupt<T>(message: impl Into<String>) -> Result<T, MatError> {
    Err(MatError::Corrupt(message.into()))
}

/// One value of a struct field, as far as the reader looks into it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    /// The first (real) element of a numeric or logical array.
    Number(f64),
    /// A char array.
    Text(String),
    /// Anything else: an empty array, a cell, a struct, a sparse matrix, an object, an
    /// undecodable string.
    Other,
}

/// A struct array: `count` elements of the same fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StructArray {
    /// Number of elements (the product of the dimensions).
    pub count: usize,
    /// Field names, in file order.
    pub fields: Vec<String>,
    /// `count * fields.len()` values, element by element (column-major element order).
    values: Vec<Scalar>,
}

impl StructArray {
    /// Field `field` of element `element`, if both exist.
    pub fn get(&self, element: usize, field: &str) -> Option<&Scalar> {
        let f = self.fields.iter().position(|name| name == field)?;
        self.values.get(element.checked_mul(self.fields.len())? + f)
    }
}

/// The struct array variable `name` of a MAT-file's bytes.
///
/// Every top-level element is checked (and every compressed one inflated), so a corrupt or
/// truncated file is an error even when the variable asked for comes first.
pub(crate) fn read_struct_array(bytes: &[u8], name: &str) -> Result<StructArray, MatError> {
    if bytes.len() < 128 {
        return corrupt(format!(
            "{} bytes, shorter than the 128-byte MAT-file header",
            bytes.len()
        ));
    }
    if bytes.starts_with(b"MATLAB 7.3 MAT-file") {
        return corrupt("a MATLAB v7.3 (HDF5) file, which is not supported; save it with -v7");
    }
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => {
            return corrupt(format!(
                "no MAT-file endian indicator (`IM` or `MI`) at bytes 126-127, found {other:?}"
            ))
        }
    };
    let mut budget = MAX_INFLATED;
    let mut found = None;
    let mut top = Elements::new(&bytes[128..], big);
    while let Some(element) = top.next()? {
        let inflated;
        let matrix = match element.ty {
            MI_MATRIX => element.data,
            MI_COMPRESSED => {
                inflated = inflate(element.data, &mut budget)?;
                let mut inner = Elements::new(&inflated, big);
                let matrix = match inner.next()? {
                    Some(e) if e.ty == MI_MATRIX => e,
                    _ => return corrupt("a compressed variable does not hold a matrix"),
                };
                if inner.next()?.is_some() {
                    return corrupt("a compressed variable holds more than one element");
                }
                // Parse it here: `inflated` lives only for this iteration.
                let header = ArrayHeader::parse(matrix.data, big)?;
                if found.is_none() && header.as_ref().is_some_and(|h| h.name == name) {
                    found = Some(struct_array(header)?);
                }
                continue;
            }
            ty => {
                return corrupt(format!(
                    "a top-level element of type {ty} is neither a matrix nor compressed"
                ))
            }
        };
        let header = ArrayHeader::parse(matrix, big)?;
        if found.is_none() && header.as_ref().is_some_and(|h| h.name == name) {
            found = Some(struct_array(header)?);
        }
    }
    found.ok_or(MatError::Missing)
}

/// Inflates a zlib stream, taking what it produces out of `budget`. The buffer grows by
/// doubling up to `budget + 1` bytes, never past it.
fn inflate(data: &[u8], budget: &mut usize) -> Result<Vec<u8>, MatError> {
    let limit = *budget + 1;
    let mut decoder = flate2::read::ZlibDecoder::new(data);
    let mut out = Vec::new();
    loop {
        if out.len() == out.capacity() {
            let room = out.capacity().max(64 << 10).min(limit - out.len());
            if room == 0 {
                break;
            }
            out.reserve_exact(room);
        }
        let filled = out.len();
        out.resize(out.capacity(), 0);
        let n = decoder
            .read(&mut out[filled..])
            .map_err(|e| MatError::Corrupt(format!("corrupt compressed data ({e})")))?;
        out.truncate(filled + n);
        if n == 0 {
            break;
        }
    }
    if out.len() > *budget {
        return corrupt(format!(
            "its compressed variables inflate to more than {} MiB",
            MAX_INFLATED >> 20
        ));
    }
    *budget -= out.len();
    Ok(out)
}

/// One data element: its type and its data (without the padding).
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    ty: u32,
    data: &'a [u8],
}

/// The data elements of a byte range, in order.
struct Elements<'a> {
    data: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Elements<'a> {
    fn new(data: &'a [u8], big: bool) -> Self {
        Elements { data, pos: 0, big }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next element; `None` at the end (or before trailing zero padding).
    fn next(&mut self) -> Result<Option<Element<'a>>, MatError> {
        let rest = &self.data[self.pos..];
        if rest.len() < 8 {
            if rest.iter().all(|&b| b == 0) {
                self.pos = self.data.len();
                return Ok(None);
            }
            return corrupt(format!(
                "{} stray bytes where an element tag should be",
                rest.len()
            ));
        }
        let word = u32_at(rest, 0, self.big);
        if word >> 16 != 0 {
            // The small format: the byte count in the upper half of the first word.
            let n = (word >> 16) as usize;
            if n > 4 {
                return corrupt(format!(
                    "a small element claims {n} bytes (at most 4 fit in it)"
                ));
            }
            self.pos += 8;
            return Ok(Some(Element {
                ty: word & 0xffff,
                data: &rest[4..4 + n],
            }));
        }
        let n = u32_at(rest, 4, self.big) as usize;
        let available = rest.len() - 8;
        if n > available {
            return corrupt(format!(
                "an element of type {word} claims {n} bytes but only {available} follow it"
            ));
        }
        // Compressed elements are not padded.
        let padded = if word == MI_COMPRESSED {
            n
        } else {
            n.div_ceil(8) * 8
        };
        self.pos += 8 + padded.min(available);
        Ok(Some(Element {
            ty: word,
            data: &rest[8..8 + n],
        }))
    }

    /// The next element, which must exist and be of type `ty` (one of `types`).
    fn expect(&mut self, what: &str, types: &[u32]) -> Result<Element<'a>, MatError> {
        match self.next()? {
            Some(e) if types.contains(&e.ty) => Ok(e),
            Some(e) => corrupt(format!("the {what} element has type {}", e.ty)),
            None => corrupt(format!("a matrix ends before its {what}")),
        }
    }
}

fn u32_at(bytes: &[u8], at: usize, big: bool) -> u32 {
    let word = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    if big {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    }
}

/// The common start of a matrix: flags, dimensions and name, and the sub-elements after them.
struct ArrayHeader<'a> {
    class: u8,
    /// The product of the dimensions.
    count: u64,
    name: String,
    rest: Elements<'a>,
}

impl<'a> ArrayHeader<'a> {
    /// `None` for an empty (zero-byte) matrix, as MATLAB writes `[]`.
    fn parse(data: &'a [u8], big: bool) -> Result<Option<Self>, MatError> {
        if data.is_empty() {
            return Ok(None);
        }
        let mut rest = Elements::new(data, big);
        let flags = rest.expect("array flags", &[MI_UINT32])?;
        if flags.data.len() != 8 {
            return corrupt(format!(
                "array flags of {} bytes (8 expected)",
                flags.data.len()
            ));
        }
        let class = (u32_at(flags.data, 0, big) & 0xff) as u8;
        let dims = rest.expect("dimensions", &[MI_INT32])?;
        if dims.data.len() % 4 != 0 {
            return corrupt(format!("dimensions of {} bytes", dims.data.len()));
        }
        let mut count = 1u64;
        for k in 0..dims.data.len() / 4 {
            let d = u32_at(dims.data, 4 * k, big) as i32;
            let d = u64::try_from(d).or_else(|_| corrupt(format!("a negative dimension {d}")))?;
            count = count.saturating_mul(d);
        }
        let name = rest.expect("name", &[MI_INT8, MI_UINT8, MI_UTF8])?;
        Ok(Some(ArrayHeader {
            class,
            count,
            name: String::from_utf8_lossy(name.data).into_owned(),
            rest,
        }))
    }
}

/// The fields of a struct matrix whose header is read.
fn struct_array(header: Option<ArrayHeader<'_>>) -> Result<StructArray, MatError> {
    let Some(mut h) = header.filter(|h| h.class == MX_STRUCT) else {
        return Err(MatError::NotStruct);
    };
    let big = h.rest.big;
    let length = h.rest.expect("field name length", &[MI_INT32])?;
    if length.data.len() != 4 {
        return corrupt("a field name length that is not one int32");
    }
    let length = u32_at(length.data, 0, big) as usize;
    let names = h.rest.expect("field names", &[MI_INT8, MI_UINT8])?;
    let fields: Vec<String> = match length {
        0 if names.data.is_empty() => Vec::new(),
        0 => return corrupt("field names of length 0"),
        _ if names.data.len() % length != 0 => {
            return corrupt(format!(
                "{} bytes of field names are not a whole number of {length}-byte names",
                names.data.len()
            ))
        }
        _ => names
            .data
            .chunks(length)
            .map(|n| {
                let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                String::from_utf8_lossy(&n[..end]).into_owned()
            })
            .collect(),
    };
    // Each value is a matrix of at least an 8-byte tag: what the dimensions claim must fit.
    let total = h.count.saturating_mul(fields.len() as u64);
    let room = (h.rest.remaining() / 8) as u64;
    if total > room {
        return corrupt(format!(
            "a {}-element struct of {} fields in {} bytes",
            h.count,
            fields.len(),
            h.rest.remaining()
        ));
    }
    let count =
        usize::try_from(h.count).or_else(|_| corrupt(format!("a {}-element struct", h.count)))?;
    let mut values = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let matrix = h.rest.expect("field value", &[MI_MATRIX])?;
        values.push(scalar(ArrayHeader::parse(matrix.data, big)?)?);
    }
    Ok(StructArray {
        count,
        fields,
        values,
    })
}

/// A field's value: the first real element of a numeric array, or a char array's text.
fn scalar(header: Option<ArrayHeader<'_>>) -> Result<Scalar, MatError> {
    let Some(mut h) = header else {
        return Ok(Scalar::Other);
    };
    let big = h.rest.big;
    if h.class == MX_CHAR {
        let Some(data) = h.rest.next()? else {
            return Ok(Scalar::Other);
        };
        return Ok(text(data, big).map_or(Scalar::Other, Scalar::Text));
    }
    if !MX_NUMERIC.contains(&h.class) {
        return Ok(Scalar::Other);
    }
    let Some(data) = h.rest.next()? else {
        return Ok(Scalar::Other);
    };
    Ok(first_number(data, big).map_or(Scalar::Other, Scalar::Number))
}

/// The first value of a numeric data element, as f64.
fn first_number(element: Element<'_>, big: bool) -> Option<f64> {
    let d = element.data;
    let bytes = |n: usize| -> Option<[u8; 8]> {
        let mut b = [0u8; 8];
        let src = d.get(..n)?;
        if big {
            b[8 - n..].copy_from_slice(src);
            b.reverse();
        } else {
            b[..n].copy_from_slice(src);
        }
        Some(b)
    };
    Some(match element.ty {
        MI_INT8 => f64::from(*d.first()? as i8),
        MI_UINT8 => f64::from(*d.first()?),
        MI_INT16 => f64::from(i16::from_le_bytes(bytes(2)?[..2].try_into().ok()?)),
        MI_UINT16 => f64::from(u16::from_le_bytes(bytes(2)?[..2].try_into().ok()?)),
        MI_INT32 => f64::from(i32::from_le_bytes(bytes(4)?[..4].try_into().ok()?)),
        MI_UINT32 => f64::from(u32::from_le_bytes(bytes(4)?[..4].try_into().ok()?)),
        MI_SINGLE => f64::from(f32::from_le_bytes(bytes(4)?[..4].try_into().ok()?)),
        MI_INT64 => i64::from_le_bytes(bytes(8)?) as f64,
        MI_UINT64 => u64::from_le_bytes(bytes(8)?) as f64,
        MI_DOUBLE => f64::from_le_bytes(bytes(8)?),
        _ => return None,
    })
}

/// The text of a char array's data: UTF-8 or 8-bit, UTF-16 or 16-bit, or UTF-32 code units.
fn text(element: Element<'_>, big: bool) -> Option<String> {
    let d = element.data;
    match element.ty {
        MI_UTF8 | MI_UINT8 | MI_INT8 => String::from_utf8(d.to_vec()).ok(),
        MI_UTF16 | MI_UINT16 | MI_INT16 => {
            let units: Vec<u16> = d
                .chunks_exact(2)
                .map(|c| {
                    if big {
                        u16::from_be_bytes([c[0], c[1]])
                    } else {
                        u16::from_le_bytes([c[0], c[1]])
                    }
                })
                .collect();
            String::from_utf16(&units).ok()
        }
        MI_UTF32 | MI_UINT32 | MI_INT32 => d
            .chunks_exact(4)
            .map(|c| char::from_u32(u32_at(c, 0, big)))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-variable MAT-file in either byte order: a 1 x 2 struct `s` with fields `p` (a
    /// char array, UTF-16 as MATLAB writes them) and `n` (uint16 numbers).
    fn file(big: bool) -> Vec<u8> {
        let word = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let element = |ty: u32, data: &[u8]| {
            let mut e = [word(ty), word(data.len() as u32)].concat();
            e.extend(data);
            e.resize(e.len().div_ceil(8) * 8, 0);
            e
        };
        let matrix = |class: u8, dims: &[u32], name: &str, rest: Vec<u8>| {
            let flags = [word(u32::from(class)), word(0)].concat();
            let dims: Vec<u8> = dims.iter().flat_map(|&d| word(d)).collect();
            let body = [
                element(MI_UINT32, &flags),
                element(MI_INT32, &dims),
                element(MI_INT8, name.as_bytes()),
                rest,
            ]
            .concat();
            element(MI_MATRIX, &body)
        };
        let text = |s: &str| {
            let units: Vec<u8> = s
                .encode_utf16()
                .flat_map(|u| {
                    if big {
                        u.to_be_bytes()
                    } else {
                        u.to_le_bytes()
                    }
                })
                .collect();
            matrix(
                MX_CHAR,
                &[1, s.len() as u32],
                "",
                element(MI_UINT16, &units),
            )
        };
        let number = |v: u16| {
            let bytes = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            matrix(11, &[1, 1], "", element(MI_UINT16, &bytes))
        };
        // The field name length as a small element: byte count in the upper half.
        let small = word(4 << 16 | MI_INT32);
        let mut fields = small.to_vec();
        fields.extend(word(8));
        fields.extend(element(MI_INT8, b"p\0\0\0\0\0\0\0n\0\0\0\0\0\0\0"));
        fields.extend([text("a.jpg"), number(513), text("é"), number(7)].concat());
        let mut out = b"MATLAB 5.0 MAT-file".to_vec();
        out.resize(124, b' ');
        out.extend(if big { [1, 0] } else { [0, 1] });
        out.extend(if big { b"MI" } else { b"IM" });
        out.extend(matrix(MX_STRUCT, &[1, 2], "s", fields));
        out
    }

    #[test]
    fn reads_both_byte_orders() {
        for big in [false, true] {
            let s = read_struct_array(&file(big), "s").unwrap();
            assert_eq!(
                (s.count, s.fields.clone()),
                (2, vec!["p".into(), "n".into()])
            );
            assert_eq!(s.get(0, "p"), Some(&Scalar::Text("a.jpg".into())));
            assert_eq!(s.get(0, "n"), Some(&Scalar::Number(513.0)));
            assert_eq!(s.get(1, "p"), Some(&Scalar::Text("é".into())));
            assert_eq!(s.get(1, "n"), Some(&Scalar::Number(7.0)));
            assert_eq!(s.get(2, "n"), None);
            assert_eq!(s.get(0, "q"), None);
        }
        assert_eq!(read_struct_array(&file(false), "t"), Err(MatError::Missing));
    }
}
