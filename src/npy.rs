//! `.npy` tensor files (NumPy format versions 1.0, 2.0 and 3.0), and the atomic file
//! writing that both `.npy` and `.safetensors` output use.
//!
//! Only little-endian float arrays in C order are read: `'<f4'` as is, `'<f8'` rounded to
//! `f32`. Every length is checked against the bytes the file really holds before anything
//! is allocated from it, so a corrupt or hostile header is an [`Error::Npy`], never a panic
//! or a huge allocation.
//!
//! ```text
//! \x93NUMPY 01 00 <u16 len> {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }  ⏎ <data>
//! ```

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy pads the preamble and header to a multiple of this.
const ALIGN: usize = 64;
/// Deepest nesting of the header literal we parse (NumPy never nests deeper than 2).
const MAX_DEPTH: usize = 8;

/// Reads a `.npy` file of `'<f4'` (or `'<f8'`, rounded to `f32`) values in C order.
///
/// Returns the shape (empty for a 0-d array) and the values in row-major order.
pub fn read_npy(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    // The allocation is the file's real size, never a size a header claims.
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|message| npy_error(path, message))
}

/// Writes `data` with `shape` as a version 1.0 `.npy` file of `'<f4'` in C order (version
/// 2.0 if the header needs more than 65535 bytes).
///
/// The file is written to a temporary file in the same directory and renamed into place, so
/// `path` is either the complete new file or untouched.
pub fn write_npy(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if numel != Some(data.len()) {
        return Err(npy_error(
            path,
            format!("shape {} does not hold the {} values given", shape_text(shape), data.len()),
        ));
    }
    let mut dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    if shape.len() > 1 {
        dims.truncate(dims.len() - 2);
    } else {
        dims.pop(); // `(3,)` for one dimension, `()` for none
    }
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // Preamble: magic, version, header length (u16 in 1.0, u32 in 2.0). The header is
    // padded with spaces and a final '\n' so that the data starts at a multiple of 64.
    let padded = |preamble: usize| (preamble + dict.len() + 1).next_multiple_of(ALIGN) - preamble;
    let v1 = padded(10) <= u16::MAX as usize;
    let len = if v1 { padded(10) } else { padded(12) };
    let header = format!("{dict}{}\n", " ".repeat(len - 1 - dict.len()));
    write_atomic(path, |w| {
        w.write_all(MAGIC)?;
        if v1 {
            w.write_all(&[1, 0])?;
            w.write_all(&(header.len() as u16).to_le_bytes())?;
        } else {
            w.write_all(&[2, 0])?;
            w.write_all(&(header.len() as u32).to_le_bytes())?;
        }
        w.write_all(header.as_bytes())?;
        for v in data {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    })
}

/// Writes a file atomically: `write` fills a temporary file in `path`'s directory, which is
/// then renamed onto `path`. On any error the temporary file is removed and `path` is left
/// as it was; the error names `path` (not the temporary file). The file gets the mode a plain
/// create would: an existing file's, else `0666` less the umask.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut BufWriter<&File>) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // `tempfile` appends ` at path "DIR/.tmpXXXX"` to its errors: the user never sees that file.
    let io = |e: std::io::Error| {
        let m = e.to_string();
        Error::io(path, m.split(" at path \"").next().unwrap_or(&m))
    };
    // Dropping `tmp` on an early return deletes the temporary file. Its mode is what a
    // plain create would give: an existing file's, else 0666 less the umask (tempfile's own
    // default, 0600, would make every output private).
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666)); // open(2) applies the umask
    }
    let tmp = builder.tempfile_in(dir).map_err(io)?;
    if let Ok(existing) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(existing.permissions()).map_err(io)?; // not masked
    }
    {
        let mut w = BufWriter::new(tmp.as_file());
        write(&mut w).map_err(io)?;
        w.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn npy_error(path: &Path, message: String) -> Error {
    Error::Npy { path: path.display().to_string(), message }
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("({})", dims.join(", "))
}

/// Decodes a whole `.npy` file.
fn parse(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (it does not start with \\x93NUMPY)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        2 | 3 => return Err("file ends inside the header length".into()),
        _ => {
            return Err(format!("unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are read)"));
        }
    };
    let header = bytes
        .get(start..)
        .and_then(|rest| rest.get(..header_len))
        .ok_or_else(|| format!("header of {header_len} bytes runs past the end of the file ({} bytes)", bytes.len()))?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text".to_string())?;
    let (descr, fortran, shape) = parse_header(header)?;
    if fortran {
        return Err("array is in Fortran order; only C order is supported (save it with np.ascontiguousarray)".into());
    }
    let item = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!("dtype '{other}' is not supported; expected '<f4' (float32) or '<f8' (float64)"));
        }
    };
    let body = &bytes[start + header_len..];
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let needed = numel.and_then(|n| n.checked_mul(item));
    let (Some(numel), Some(needed)) = (numel, needed) else {
        return Err(format!("shape {} is too large", shape_text(&shape)));
    };
    if needed != body.len() {
        return Err(format!(
            "shape {} of '{descr}' needs {needed} bytes of data, the file holds {}",
            shape_text(&shape),
            body.len()
        ));
    }
    let data: Vec<f32> = if item == 4 {
        body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        body.chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect()
    };
    debug_assert_eq!(data.len(), numel);
    Ok((shape, data))
}

/// The subset of Python literals a `.npy` header is written in.
#[derive(Debug, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(usize),
    Tuple(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

/// Extracts `descr`, `fortran_order` and `shape` from the header dictionary.
fn parse_header(text: &str) -> Result<(String, bool, Vec<usize>), String> {
    let mut p = LiteralParser { s: text.as_bytes(), i: 0 };
    let bad = |what: &str| format!("header is not a valid .npy header ({what}): {:?}", text.trim_end());
    let Literal::Dict(entries) = p.value(0).map_err(|e| bad(&e))? else {
        return Err(bad("not a dictionary"));
    };
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(bad("text after the dictionary"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in entries {
        match (k, v) {
            (Literal::Str(k), Literal::Str(v)) if k == "descr" => descr = Some(v),
            (Literal::Str(k), Literal::Bool(v)) if k == "fortran_order" => fortran = Some(v),
            (Literal::Str(k), Literal::Tuple(dims)) if k == "shape" => {
                let dims = dims.into_iter().map(|d| match d {
                    Literal::Int(d) => Ok(d),
                    _ => Err(bad("shape is not a tuple of integers")),
                });
                shape = Some(dims.collect::<Result<Vec<_>, _>>()?);
            }
            (Literal::Str(k), _) => return Err(bad(&format!("unexpected or ill-typed key '{k}'"))),
            _ => return Err(bad("a key is not a string")),
        }
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err(bad("it needs the keys 'descr', 'fortran_order' and 'shape'")),
    }
}

struct LiteralParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl LiteralParser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += hit as usize;
        hit
    }

    /// One literal; `depth` bounds the recursion so a crafted header cannot overflow the stack.
    fn value(&mut self, depth: usize) -> Result<Literal, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut entries = Vec::new();
                while !self.eat(b'}') {
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err("expected ':'".into());
                    }
                    entries.push((k, self.value(depth + 1)?));
                    if !self.eat(b',') && self.peek() != Some(b'}') {
                        return Err("expected ',' or '}'".into());
                    }
                }
                Ok(Literal::Dict(entries))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') && self.peek() != Some(close) {
                        return Err("expected ',' or the end of a tuple".into());
                    }
                }
                Ok(Literal::Tuple(items))
            }
            Some(q @ (b'\'' | b'"')) => {
                let start = self.i + 1;
                let len = self.s[start..].iter().position(|&c| c == q).ok_or("unterminated string")?;
                self.i = start + len + 1;
                Ok(Literal::Str(String::from_utf8_lossy(&self.s[start..start + len]).into_owned()))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                let n = digits.parse::<usize>().map_err(|_| format!("dimension {digits} is too large"))?;
                self.i += (self.s.get(self.i) == Some(&b'L')) as usize; // Python 2 long suffix
                Ok(Literal::Int(n))
            }
            _ => {
                for (word, b) in [("True", true), ("False", false)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(Literal::Bool(b));
                    }
                }
                Err(format!("unexpected text at byte {}", self.i))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("temporary directory")
    }

    fn message(r: Result<(Vec<usize>, Vec<f32>)>) -> String {
        match r {
            Err(Error::Npy { message, .. }) => message,
            other => panic!("expected an Npy error, got {other:?}"),
        }
    }

    /// A hand-made v1.0 file with the given header dict and data bytes.
    fn raw(dict: impl AsRef<[u8]>, body: &[u8]) -> Vec<u8> {
        let dict = dict.as_ref();
        let mut v = MAGIC.to_vec();
        v.extend([1, 0]);
        v.extend((dict.len() as u16).to_le_bytes());
        v.extend(dict);
        v.extend(body);
        v
    }

    #[test]
    fn round_trips_shapes_of_every_rank() {
        let dir = tmp();
        let p = dir.path().join("x.npy");
        for shape in [vec![], vec![3], vec![2, 3], vec![1, 2, 2, 2], vec![0, 4]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            write_npy(&p, &shape, &data).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!((bytes.len() - 4 * n) % 64, 0, "the data starts at a multiple of 64");
            assert_eq!(read_npy(&p).unwrap(), (shape, data));
        }
    }

    #[test]
    fn writes_what_numpy_writes() {
        // /opt/torchenv/bin/python -c "import numpy as np, io; b = io.BytesIO();
        //     np.save(b, np.array([[1, 2, 3]], '<f4')); print(b.getvalue())"   (numpy 2.4.6)
        // 140 bytes: b'\x93NUMPY\x01\x00v\x00' + the dict padded with spaces and '\n' to
        // 118 bytes + the 12 data bytes.
        let dir = tmp();
        let p = dir.path().join("a.npy");
        write_npy(&p, &[1, 3], &[1.0, 2.0, 3.0]).unwrap();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }";
        let mut numpy = b"\x93NUMPY\x01\x00v\x00".to_vec();
        numpy.extend(format!("{dict}{}\n", " ".repeat(117 - dict.len())).bytes());
        for v in [1.0f32, 2.0, 3.0] {
            numpy.extend(v.to_le_bytes());
        }
        assert_eq!(std::fs::read(&p).unwrap(), numpy);
    }

    #[test]
    fn reads_f8_version_2_and_python2_longs() {
        let dir = tmp();
        let p = dir.path().join("d.npy");
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }\n";
        let mut v = MAGIC.to_vec();
        v.extend([2, 0]);
        v.extend((dict.len() as u32).to_le_bytes());
        v.extend(dict.as_bytes());
        v.extend(0.1f64.to_le_bytes());
        v.extend((-3.0f64).to_le_bytes());
        std::fs::write(&p, v).unwrap();
        assert_eq!(read_npy(&p).unwrap(), (vec![2], vec![0.1f32, -3.0]));
    }

    #[test]
    fn refuses_corrupt_files_clearly() {
        let dir = tmp();
        let p = dir.path().join("bad.npy");
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        let mut huge_len = MAGIC.to_vec();
        huge_len.extend([2, 0, 0xff, 0xff, 0xff, 0xff]);
        let mut nested = String::from("{'descr': '<f4', 'fortran_order': False, 'shape': ");
        nested.push_str(&"(".repeat(10_000));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"PK\x03\x04 this is a zip file".to_vec(), "not a .npy file"),
            (b"\x93NUM".to_vec(), "not a .npy file"),
            (raw(ok, &[0; 8])[..30].to_vec(), "runs past the end of the file"),
            (huge_len, "runs past the end of the file"),
            (raw(ok, &[0; 4]), "needs 8 bytes of data, the file holds 4"),
            (raw(ok, &[0; 12]), "needs 8 bytes of data, the file holds 12"),
            (raw("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", &[0; 8]), "Fortran order"),
            (raw("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", &[0; 8]), "'<i8' is not supported"),
            (raw("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", &[0; 8]), "'>f4' is not supported"),
            (
                raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", &[]),
                "is too large",
            ),
            (
                raw("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", &[]),
                "is too large",
            ),
            (raw("{'descr': '<f4', 'shape': (2,), }", &[0; 8]), "needs the keys"),
            (raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", &[0; 8]), "'x'"),
            (raw("{'descr': '<f4', 'fortran_order': False, 'shape': ('a',), }", &[0; 8]), "integers"),
            (raw("{'descr': '<f4', 'fortran_order': False", &[]), "not a valid .npy header"),
            (raw(&nested, &[]), "nested too deeply"),
            (raw("[1, 2]", &[]), "not a dictionary"),
            (raw(b"{'descr': '<f4\xff", &[]), "header is not text"),
            (
                {
                    let mut v = MAGIC.to_vec();
                    v.extend([9, 0, 0, 0]);
                    v
                },
                "version 9.0",
            ),
        ];
        for (bytes, expected) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let m = message(read_npy(&p));
            assert!(m.contains(expected), "{m:?} should mention {expected:?}");
        }
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e} names the file");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let e = read_npy("/nonexistent/dir/x.npy").unwrap_err();
        assert!(matches!(&e, Error::Io { path, .. } if path == "/nonexistent/dir/x.npy"), "{e:?}");
    }

    #[test]
    fn writing_is_atomic_and_checks_the_shape() {
        let dir = tmp();
        let p = dir.path().join("x.npy");
        write_npy(&p, &[2], &[1.0, 2.0]).unwrap();
        let e = write_npy(&p, &[3], &[1.0, 2.0]).unwrap_err();
        assert!(e.to_string().contains("shape (3) does not hold the 2 values"), "{e}");
        let e = write_npy(&p, &[usize::MAX, 2], &[]).unwrap_err();
        assert!(matches!(e, Error::Npy { .. }));
        let e = write_npy(dir.path().join("no/such/dir/x.npy"), &[1], &[1.0]).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        // The old file is intact and no temporary file is left behind.
        assert_eq!(read_npy(&p).unwrap(), (vec![2], vec![1.0, 2.0]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_long_header_switches_to_version_2() {
        let dir = tmp();
        let p = dir.path().join("long.npy");
        let shape = vec![1usize; 30_000];
        write_npy(&p, &shape, &[7.0]).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert_eq!(&b[6..8], &[2, 0]);
        assert_eq!((b.len() - 4) % 64, 0);
        assert_eq!(read_npy(&p).unwrap(), (shape, vec![7.0]));
    }
}
