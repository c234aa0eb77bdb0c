//! JPEG tiles (TIFF compression 7) decoded the way GDAL decodes them.
//!
//! GDAL reads JPEG-in-TIFF through libtiff and IJG libjpeg 9 (the library
//! the rasterio/GDAL wheels ship), with libtiff's `JPEGCOLORMODE_RGB` for
//! YCbCr files. To give the same samples this decoder follows libjpeg 9's
//! documented arithmetic, written here from its description:
//!
//! - the accurate integer inverse DCT (Loeffler–Ligtenberg–Moschytz, 13-bit
//!   constants, 2 extra bits between the passes, round-half-up descale);
//! - chroma subsampled 2× is upsampled **inside the IDCT**: libjpeg 7 and
//!   later decode such a component's 8×8 coefficient block with a 16-point
//!   IDCT (16×16, 16×8 or 8×16 samples) when fancy upsampling is on (its
//!   default, which libtiff keeps), instead of the triangle filter of
//!   libjpeg 6b / libjpeg-turbo; any further factor is pixel replication;
//! - YCbCr → RGB with libjpeg's 16-bit fixed-point tables (1.402, 1.772,
//!   0.714136286, 0.344136286).
//!
//! Files that are not YCbCr are decoded without colour conversion (libtiff
//! sets the JPEG colour space to "unknown"), so greyscale, planar, RGB and
//! RGBA JPEG tiles are the raw components.
//!
//! Covered: baseline and extended sequential Huffman JPEG, 8-bit samples,
//! 1–4 components, any sampling factors whose ratios are integral,
//! interleaved or per-component scans, restart intervals. Anything else
//! (progressive, lossless, arithmetic coding, 12-bit) returns `Ok(None)` and
//! the caller falls back to another decoder. Corrupt data is an error,
//! never a panic; sizes are checked against the tile before allocating.

use std::fmt;

/// Why a JPEG tile did not decode.
#[derive(Debug, Clone)]
pub(crate) struct JpegError(String);

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JPEG: {}", self.0)
    }
}

impl std::error::Error for JpegError {}

type Res<T> = std::result::Result<T, JpegError>;

fn bad<T>(m: impl Into<String>) -> Res<T> {
    Err(JpegError(m.into()))
}

/// Zigzag position → natural (row-major) position, with 16 guard entries
/// (a corrupt run past coefficient 63 lands on 63, as in libjpeg).
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

/// Bits of the fast Huffman lookup.
const LOOKAHEAD: u32 = 9;

/// One Huffman table: a lookahead table for codes up to [`LOOKAHEAD`] bits,
/// canonical-code limits for the longer ones.
#[derive(Clone)]
struct Huffman {
    /// `(length << 8) | symbol`, length 0 = longer code.
    fast: Vec<u16>,
    /// Largest code of each length (-1: none), index 1..=16.
    maxcode: [i32; 17],
    /// First code of each length.
    mincode: [i32; 17],
    /// Index in `symbols` of the first code of each length.
    valptr: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Res<Huffman> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || total != symbols.len() {
            return bad("Huffman table with a bad symbol count");
        }
        let mut fast = vec![0u16; 1 << LOOKAHEAD];
        let (mut maxcode, mut mincode, mut valptr) = ([-1i32; 17], [0i32; 17], [0i32; 17]);
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16usize {
            let n = usize::from(counts[len - 1]);
            valptr[len] = k as i32;
            mincode[len] = code;
            for _ in 0..n {
                // every code of this length must fit in `len` bits
                if code >= (1 << len) {
                    return bad("Huffman table with more codes than fit their lengths");
                }
                if len as u32 <= LOOKAHEAD {
                    let shift = LOOKAHEAD - len as u32;
                    let first = (code as usize) << shift;
                    for slot in &mut fast[first..first + (1 << shift)] {
                        *slot = ((len as u16) << 8) | u16::from(symbols[k]);
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        Ok(Huffman {
            fast,
            maxcode,
            mincode,
            valptr,
            symbols: symbols.to_vec(),
        })
    }
}

/// The entropy-coded bits of a scan: byte stuffing undone; a marker (or the
/// end of the data) reads as zero bits from there on, as in libjpeg.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Left-aligned bit buffer.
    acc: u64,
    n: u32,
    at_marker: bool,
    /// Zero bits past a marker or the end at the tail of `acc`.
    phantom: u32,
    /// Some of those were consumed: the scan's data ended too soon.
    overrun: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            acc: 0,
            n: 0,
            at_marker: false,
            phantom: 0,
            overrun: false,
        }
    }

    fn fill(&mut self) {
        while self.n <= 56 {
            let mut byte = 0u8;
            if !self.at_marker {
                match self.data.get(self.pos) {
                    None => self.at_marker = true,
                    Some(&0xFF) => match self.data.get(self.pos + 1) {
                        Some(0x00) => {
                            byte = 0xFF;
                            self.pos += 2;
                        }
                        _ => self.at_marker = true,
                    },
                    Some(&b) => {
                        byte = b;
                        self.pos += 1;
                    }
                }
            }
            if self.at_marker {
                self.phantom += 8;
            }
            self.acc |= u64::from(byte) << (56 - self.n);
            self.n += 8;
        }
    }

    fn peek(&mut self, k: u32) -> u32 {
        if self.n < k {
            self.fill();
        }
        (self.acc >> (64 - k)) as u32
    }

    fn consume(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
        if self.n < self.phantom {
            self.overrun = true;
            self.phantom = self.n;
        }
    }

    fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        let v = self.peek(k);
        self.consume(k);
        v
    }

    fn decode(&mut self, h: &Huffman) -> Res<u8> {
        let e = h.fast[self.peek(LOOKAHEAD) as usize];
        if e >> 8 != 0 {
            self.consume(u32::from(e >> 8));
            return Ok(e as u8);
        }
        for len in LOOKAHEAD + 1..=16 {
            let code = self.peek(len) as i32;
            if code <= h.maxcode[len as usize] {
                self.consume(len);
                let i = h.valptr[len as usize] + code - h.mincode[len as usize];
                return match h.symbols.get(i as usize) {
                    Some(&s) => Ok(s),
                    None => bad("bad Huffman code"),
                };
            }
        }
        bad("bad Huffman code")
    }

    /// `s` bits as a signed coefficient (JPEG's EXTEND).
    fn receive_extend(&mut self, s: u8) -> i32 {
        let s = u32::from(s.min(16));
        if s == 0 {
            return 0;
        }
        let v = self.bits(s) as i32;
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Skips to after the restart marker that must come next.
    fn restart(&mut self) -> Res<()> {
        if self.overrun {
            return bad("entropy-coded data cut short before a restart marker");
        }
        self.acc = 0;
        self.n = 0;
        self.phantom = 0;
        self.at_marker = false;
        while self.data.get(self.pos) == Some(&0xFF) && self.data.get(self.pos + 1) == Some(&0xFF) {
            self.pos += 1;
        }
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xFF), Some(0xD0..=0xD7)) => {
                self.pos += 2;
                Ok(())
            }
            _ => bad("restart marker missing"),
        }
    }
}

#[derive(Clone)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Output samples per 8 coefficients across / down: 8, or 16 where
    /// libjpeg upsamples 2× in the IDCT.
    scale_h: usize,
    scale_v: usize,
    /// Blocks across / down in the padded plane (whole MCUs).
    blocks_w: usize,
    blocks_h: usize,
    /// IDCT output, `blocks_w·scale_h` wide.
    plane: Vec<u8>,
    seen: bool,
}

struct Frame {
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
    comps: Vec<Component>,
}

#[derive(Default)]
struct State {
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart_interval: usize,
    frame: Option<Frame>,
}

fn be16(b: &[u8], at: usize) -> Res<usize> {
    match (b.get(at), b.get(at + 1)) {
        (Some(&h), Some(&l)) => Ok(usize::from(h) << 8 | usize::from(l)),
        _ => bad("segment cut short"),
    }
}

/// What a marker segment pass found.
enum Parsed {
    /// The stream ended (EOI or its end).
    Done,
    /// A coding process this decoder leaves to another one.
    Unsupported,
}

/// Decodes one JPEG tile of `width × rows` pixels (of a chunk `full_height`
/// rows tall: a short last strip may be coded with either height) and
/// `samples` components into interleaved 8-bit samples
/// (`rows × width × samples`), with the
/// file's JPEGTables segment (`tables`) read first. `ycbcr`: convert YCbCr
/// to RGB (the file's PhotometricInterpretation is YCbCr, pixel-interleaved).
///
/// `Ok(None)`: a JPEG process this decoder does not cover (progressive,
/// lossless, arithmetic, 12-bit): decode it another way.
pub(crate) fn decode(
    tables: Option<&[u8]>,
    data: &[u8],
    (width, rows, full_height): (usize, usize, usize),
    samples: usize,
    ycbcr: bool,
) -> Res<Option<Vec<u8>>> {
    let mut st = State::default();
    if let Some(t) = tables
        && let Parsed::Unsupported = parse(&mut st, t, None)?
    {
        return Ok(None);
    }
    if let Parsed::Unsupported = parse(&mut st, data, Some((width, rows, full_height)))? {
        return Ok(None);
    }
    let Some(frame) = st.frame else {
        return bad("no frame header (SOF)");
    };
    if frame.comps.len() != samples {
        return bad(format!(
            "{} components, the TIFF declares {samples} samples per pixel",
            frame.comps.len()
        ));
    }
    if let Some(c) = frame.comps.iter().find(|c| !c.seen) {
        return bad(format!("component {} has no scan", c.id));
    }
    if ycbcr && samples != 3 {
        return bad(format!("YCbCr with {samples} components"));
    }
    // without colour conversion libtiff hands subsampled components out
    // as raw data units: not a layout this decoder writes
    if !ycbcr
        && frame.comps.len() > 1
        && frame
            .comps
            .iter()
            .any(|c| c.h != frame.hmax || c.v != frame.vmax)
    {
        return Ok(None);
    }
    let (w, h) = (frame.width, frame.height.min(rows));
    let mut out = vec![0u8; w * h * samples];
    for (ci, c) in frame.comps.iter().enumerate() {
        let pw = c.blocks_w * c.scale_h;
        let (ex, ey) = (
            frame.hmax * 8 / (c.h * c.scale_h),
            frame.vmax * 8 / (c.v * c.scale_v),
        );
        for y in 0..h {
            let row = &c.plane[(y / ey) * pw..(y / ey + 1) * pw];
            let dst = &mut out[y * w * samples..(y + 1) * w * samples];
            for x in 0..w {
                dst[x * samples + ci] = row[x / ex];
            }
        }
    }
    if ycbcr {
        ycc_to_rgb(&mut out);
    }
    Ok(Some(out))
}

/// libjpeg's YCbCr → RGB (jdcolor.c's tables, 16 fractional bits).
fn ycc_to_rgb(px: &mut [u8]) {
    const HALF: i32 = 1 << 15;
    let cr_r: Vec<i32> = (0..256)
        .map(|i| (91_881 * (i - 128) + HALF) >> 16)
        .collect();
    let cb_b: Vec<i32> = (0..256)
        .map(|i| (116_130 * (i - 128) + HALF) >> 16)
        .collect();
    let cr_g: Vec<i32> = (0..256).map(|i| -46_802 * (i - 128)).collect();
    let cb_g: Vec<i32> = (0..256).map(|i| -22_553 * (i - 128) + HALF).collect();
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    for p in px.chunks_exact_mut(3) {
        let (y, cb, cr) = (i32::from(p[0]), usize::from(p[1]), usize::from(p[2]));
        p[0] = clamp(y + cr_r[cr]);
        p[1] = clamp(y + ((cb_g[cb] + cr_g[cr]) >> 16));
        p[2] = clamp(y + cb_b[cb]);
    }
}

/// Reads the marker segments of one stream (the tables, or a tile) into
/// `st`, decoding its scans. `tile`: the tile's `(width, rows, full
/// height)`, which the frame must match.
fn parse(st: &mut State, b: &[u8], tile: Option<(usize, usize, usize)>) -> Res<Parsed> {
    if b.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return bad("no start-of-image marker");
    }
    let mut pos = 2;
    loop {
        // next marker: 0xFF (fill 0xFFs), then a code that is neither 0 nor 0xFF
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        let Some(&m) = b.get(pos) else {
            return Ok(Parsed::Done);
        };
        pos += 1;
        match m {
            0xD9 => return Ok(Parsed::Done),
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let len = be16(b, pos)?;
        if len < 2 || pos + len > b.len() {
            return bad(format!(
                "marker 0x{m:02X} segment of {len} bytes past the data"
            ));
        }
        let seg = &b[pos + 2..pos + len];
        pos += len;
        match m {
            0xDB => dqt(st, seg)?,
            0xC4 => dht(st, seg)?,
            0xDD => st.restart_interval = be16(seg, 0)?,
            0xC0 | 0xC1 => {
                let Some(tile) = tile else {
                    return bad("frame header in the JPEGTables");
                };
                if st.frame.is_some() {
                    return bad("two frame headers");
                }
                match sof(seg, tile)? {
                    Some(f) => st.frame = Some(f),
                    None => return Ok(Parsed::Unsupported),
                }
            }
            // progressive, lossless, hierarchical, arithmetic coding
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xCC => {
                return Ok(Parsed::Unsupported);
            }
            0xDA => pos = scan(st, seg, b, pos)?,
            _ => {} // APPn, COM, DNL...
        }
    }
}

fn dqt(st: &mut State, mut seg: &[u8]) -> Res<()> {
    while let Some(&pq_tq) = seg.first() {
        let (pq, tq) = (pq_tq >> 4, usize::from(pq_tq & 15));
        if tq > 3 || pq > 1 {
            return bad("bad quantization table header");
        }
        let n = if pq == 0 { 64 } else { 128 };
        if seg.len() < 1 + n {
            return bad("quantization table cut short");
        }
        let mut q = [0u16; 64];
        for (k, &nat) in NATURAL[..64].iter().enumerate() {
            q[nat] = if pq == 0 {
                u16::from(seg[1 + k])
            } else {
                u16::from_be_bytes([seg[1 + 2 * k], seg[2 + 2 * k]])
            };
        }
        st.quant[tq] = Some(q);
        seg = &seg[1 + n..];
    }
    Ok(())
}

fn dht(st: &mut State, mut seg: &[u8]) -> Res<()> {
    while let Some(&tc_th) = seg.first() {
        let (tc, th) = (tc_th >> 4, usize::from(tc_th & 15));
        if tc > 1 || th > 3 || seg.len() < 17 {
            return bad("bad Huffman table header");
        }
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&seg[1..17]);
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let Some(symbols) = seg.get(17..17 + total) else {
            return bad("Huffman table cut short");
        };
        let t = Huffman::new(&counts, symbols)?;
        if tc == 0 {
            st.dc[th] = Some(t);
        } else {
            st.ac[th] = Some(t);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

/// The frame header; `None` for a sample precision other than 8 bits.
fn sof(seg: &[u8], (tile_w, rows, full): (usize, usize, usize)) -> Res<Option<Frame>> {
    let Some(&precision) = seg.first() else {
        return bad("frame header cut short");
    };
    if precision != 8 {
        return Ok(None);
    }
    let (height, width) = (be16(seg, 1)?, be16(seg, 3)?);
    let nc = usize::from(*seg.get(5).unwrap_or(&0));
    // libtiff refuses a JPEG whose size is not the tile's (a strip may be
    // short: its rows, or the full strip height)
    if width != tile_w || height < rows.max(1) || height > full.max(rows) {
        return bad(format!(
            "frame of {width}×{height} px in a tile of {tile_w}×{rows} px"
        ));
    }
    if !(1..=4).contains(&nc) || seg.len() < 6 + 3 * nc {
        return bad(format!("frame header with {nc} components"));
    }
    let mut comps = Vec::with_capacity(nc);
    for i in 0..nc {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
            return bad("bad component sampling factors or table");
        }
        comps.push(Component {
            id: c[0],
            h,
            v,
            tq: usize::from(c[2]),
            scale_h: 8,
            scale_v: 8,
            blocks_w: 0,
            blocks_h: 0,
            plane: Vec::new(),
            seen: false,
        });
    }
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    let (mcus_x, mcus_y) = (width.div_ceil(8 * hmax), height.div_ceil(8 * vmax));
    for c in &mut comps {
        // libjpeg 7+: a component subsampled by an even factor is scaled up
        // 2× by its IDCT (fancy upsampling); at most 2:1 between the axes
        if hmax % (c.h * 2) == 0 {
            c.scale_h = 16;
        }
        if vmax % (c.v * 2) == 0 {
            c.scale_v = 16;
        }
        if hmax * 8 % (c.h * c.scale_h) != 0 || vmax * 8 % (c.v * c.scale_v) != 0 {
            return Ok(None);
        }
        c.blocks_w = mcus_x * c.h;
        c.blocks_h = mcus_y * c.v;
        c.plane = vec![0u8; c.blocks_w * c.scale_h * c.blocks_h * c.scale_v];
    }
    Ok(Some(Frame {
        width,
        height,
        hmax,
        vmax,
        comps,
    }))
}

/// Decodes the scan whose header is `seg` and whose data start at `pos`;
/// returns where the data after it start.
fn scan(st: &mut State, seg: &[u8], b: &[u8], pos: usize) -> Res<usize> {
    let Some(frame) = st.frame.as_mut() else {
        return bad("scan before the frame header");
    };
    let ns = usize::from(*seg.first().unwrap_or(&0));
    if ns == 0 || ns > frame.comps.len() || seg.len() < 1 + 2 * ns + 3 {
        return bad(format!("scan header with {ns} components"));
    }
    // (component index, DC table, AC table, quant table)
    let mut sel = Vec::with_capacity(ns);
    for i in 0..ns {
        let (id, t) = (seg[1 + 2 * i], seg[2 + 2 * i]);
        let Some(ci) = frame.comps.iter().position(|c| c.id == id) else {
            return bad(format!("scan names unknown component {id}"));
        };
        let (td, ta) = (usize::from(t >> 4), usize::from(t & 15));
        let c = &frame.comps[ci];
        let (Some(Some(dc)), Some(Some(ac)), Some(q)) = (
            st.dc.get(td),
            st.ac.get(ta),
            st.quant.get(c.tq).copied().flatten(),
        ) else {
            return bad(format!("component {id}: a table it names is missing"));
        };
        sel.push((ci, dc.clone(), ac.clone(), q));
    }
    let comp_of: Vec<usize> = sel.iter().map(|s| s.0).collect();
    let mut bits = Bits::new(b, pos);
    let mut preds = vec![0i32; ns];
    let ri = st.restart_interval;
    let mut coef = [0i16; 64];
    let mut mcu_index = 0usize;
    let mut unit = |bits: &mut Bits<'_>,
                    preds: &mut [i32],
                    frame: &mut Frame,
                    k: usize,
                    bx: usize,
                    by: usize|
     -> Res<()> {
        let (ci, dc, ac, q) = &sel[k];
        decode_block(bits, dc, ac, &mut preds[k], &mut coef)?;
        let c = &mut frame.comps[*ci];
        let stride = c.blocks_w * c.scale_h;
        let at = by * c.scale_v * stride + bx * c.scale_h;
        idct(&coef, q, c.scale_h, c.scale_v, &mut c.plane[at..], stride);
        Ok(())
    };
    let restart = |bits: &mut Bits<'_>, preds: &mut [i32], mcu_index: usize, total: usize| {
        if ri > 0 && mcu_index.is_multiple_of(ri) && mcu_index < total {
            preds.iter_mut().for_each(|p| *p = 0);
            return bits.restart();
        }
        Ok(())
    };
    if ns == 1 {
        let (ci, ..) = sel[0];
        let c = &frame.comps[ci];
        let cw = (frame.width * c.h).div_ceil(frame.hmax);
        let chh = (frame.height * c.v).div_ceil(frame.vmax);
        let (bw, bh) = (cw.div_ceil(8), chh.div_ceil(8));
        let total = bw * bh;
        for by in 0..bh {
            for bx in 0..bw {
                unit(&mut bits, &mut preds, frame, 0, bx, by)?;
                mcu_index += 1;
                restart(&mut bits, &mut preds, mcu_index, total)?;
            }
        }
    } else {
        let mcus_x = frame.width.div_ceil(8 * frame.hmax);
        let mcus_y = frame.height.div_ceil(8 * frame.vmax);
        let total = mcus_x * mcus_y;
        for my in 0..mcus_y {
            for mx in 0..mcus_x {
                for (k, &ci) in comp_of.iter().enumerate() {
                    let (h, v) = (frame.comps[ci].h, frame.comps[ci].v);
                    for yy in 0..v {
                        for xx in 0..h {
                            unit(&mut bits, &mut preds, frame, k, mx * h + xx, my * v + yy)?;
                        }
                    }
                }
                mcu_index += 1;
                restart(&mut bits, &mut preds, mcu_index, total)?;
            }
        }
    }
    if bits.overrun {
        // libjpeg goes on with zeros (and warns); a tile cut short is an error here
        return bad("entropy-coded data cut short (premature end of data or a marker)");
    }
    for (ci, ..) in &sel {
        frame.comps[*ci].seen = true;
    }
    Ok(bits.pos)
}

/// One 8×8 block's coefficients (natural order, not yet dequantized).
fn decode_block(
    bits: &mut Bits<'_>,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    coef: &mut [i16; 64],
) -> Res<()> {
    *coef = [0; 64];
    let t = bits.decode(dc)?;
    let diff = bits.receive_extend(t);
    *pred = pred.wrapping_add(diff);
    coef[0] = *pred as i16;
    let mut k = 1usize;
    while k < 64 {
        let rs = bits.decode(ac)?;
        let (r, s) = (usize::from(rs >> 4), rs & 15);
        if s != 0 {
            k += r;
            coef[NATURAL[k.min(79)]] = bits.receive_extend(s) as i16;
        } else if r != 15 {
            break;
        } else {
            k += 15;
        }
        k += 1;
    }
    Ok(())
}

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

/// libjpeg's 8-point IDCT kernel (jidctint.c's accurate integer method):
/// `x` the 8 inputs, `fudge` the rounding term added to the DC product.
fn kernel8(x: &[i64; 8], fudge: i64) -> [i64; 8] {
    // even part
    let (z2, z3) = (x[2], x[6]);
    let z1 = (z2 + z3) * 4433; // c6
    let tmp2 = z1 + z2 * 6270; // c2-c6
    let tmp3 = z1 - z3 * 15137; // c2+c6
    let z2 = (x[0] << CONST_BITS) + fudge;
    let z3 = x[4] << CONST_BITS;
    let (tmp0, tmp1) = (z2 + z3, z2 - z3);
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp2, tmp0 - tmp2, tmp1 + tmp3, tmp1 - tmp3);
    // odd part
    let (mut t0, mut t1, mut t2, mut t3) = (x[7], x[5], x[3], x[1]);
    let (z2, z3) = (t0 + t2, t1 + t3);
    let z1 = (z2 + z3) * 9633; // c3
    let z2 = z2 * -16069 + z1; // -c3-c5
    let z3 = z3 * -3196 + z1; // -c3+c5
    let z1 = (t0 + t3) * -7373; // -c3+c7
    t0 = t0 * 2446 + z1 + z2; // -c1+c3+c5-c7
    t3 = t3 * 12299 + z1 + z3; // c1+c3-c5-c7
    let z1 = (t1 + t2) * -20995; // -c1-c3
    t1 = t1 * 16819 + z1 + z3; // c1+c3-c5+c7
    t2 = t2 * 25172 + z1 + z2; // c1+c3+c5-c7
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// libjpeg 7+'s 16-point IDCT kernel of 8 inputs (the higher frequencies
/// taken as zero): a 2× upsampling in the DCT domain. Constants are
/// `round(c · 2^13)` of the cosines named.
fn kernel16(x: &[i64; 8], fudge: i64) -> [i64; 16] {
    // even part
    let tmp0 = (x[0] << CONST_BITS) + fudge;
    let z1 = x[4];
    let tmp1 = z1 * 10703; // c4[16] = c2[8]
    let tmp2 = z1 * 4433; // c12[16] = c6[8]
    let (tmp10, tmp11, tmp12, tmp13) = (tmp0 + tmp1, tmp0 - tmp1, tmp0 + tmp2, tmp0 - tmp2);
    let (z1, z2) = (x[2], x[6]);
    let z3 = z1 - z2;
    let z4 = z3 * 2260; // c14[16] = c7[8]
    let z3 = z3 * 11363; // c2[16] = c1[8]
    let tmp0 = z3 + z2 * 20995; // (c6+c2)[16] = (c3+c1)[8]
    let tmp1 = z4 + z1 * 7373; // (c6-c14)[16] = (c3-c7)[8]
    let tmp2 = z3 - z1 * 4926; // (c2-c10)[16] = (c1-c5)[8]
    let tmp3 = z4 - z2 * 4176; // (c10-c14)[16] = (c5-c7)[8]
    let (t20, t27) = (tmp10 + tmp0, tmp10 - tmp0);
    let (t21, t26) = (tmp12 + tmp1, tmp12 - tmp1);
    let (t22, t25) = (tmp13 + tmp2, tmp13 - tmp2);
    let (t23, t24) = (tmp11 + tmp3, tmp11 - tmp3);
    // odd part
    let (z1, mut z2, z3, z4) = (x[1], x[3], x[5], x[7]);
    let s13 = z1 + z3;
    let mut o1 = (z1 + z2) * 11086; // c3
    let mut o2 = s13 * 10217; // c5
    let mut o3 = (z1 + z4) * 8956; // c7
    let mut o10 = (z1 - z4) * 7350; // c9
    let mut o11 = s13 * 5461; // c11
    let mut o12 = (z1 - z2) * 3363; // c13
    let o0 = o1 + o2 + o3 - z1 * 18730; // c7+c5+c3-c1
    let o13 = o10 + o11 + o12 - z1 * 15038; // c9+c11+c13-c15
    let m = (z2 + z3) * 1136; // c15
    o1 += m + z2 * 589; // c9+c11-c3-c15
    o2 += m - z3 * 9222; // c5+c7+c15-c3
    let m = (z3 - z2) * 11529; // c1
    o11 += m - z3 * 6278; // c1+c11-c9-c13
    o12 += m + z2 * 16154; // c1+c5+c13-c7
    z2 += z4;
    let m = z2 * -5461; // -c11
    o1 += m;
    o3 += m + z4 * 8728; // c3+c11+c15-c7
    let m = z2 * -10217; // -c5
    o10 += m + z4 * 25733; // c1+c5+c9-c13
    o12 += m;
    let m = (z3 + z4) * -11086; // -c3
    o2 += m;
    o3 += m;
    let m = (z4 - z3) * 3363; // c13
    o10 += m;
    o11 += m;
    [
        t20 + o0,
        t21 + o1,
        t22 + o2,
        t23 + o3,
        t24 + o10,
        t25 + o11,
        t26 + o12,
        t27 + o13,
        t27 - o13,
        t26 - o12,
        t25 - o11,
        t24 - o10,
        t23 - o3,
        t22 - o2,
        t21 - o1,
        t20 - o0,
    ]
}

fn kernel(x: &[i64; 8], fudge: i64, n: usize, out: &mut [i64; 16]) {
    if n == 16 {
        *out = kernel16(x, fudge);
    } else {
        out[..8].copy_from_slice(&kernel8(x, fudge));
    }
}

/// A descaled IDCT output as a sample: libjpeg's range limit (the value
/// plus 128, clamped to 0..=255, taken modulo 1024 first).
fn range_limit(v: i64) -> u8 {
    let i = ((v + 512) & 1023) as i32;
    (i - 384).clamp(0, 255) as u8
}

/// Dequantizes and inverse-transforms one block into `nh × nv` samples
/// (8 or 16 each) of `out` (row stride `stride`).
fn idct(coef: &[i16; 64], q: &[u16; 64], nh: usize, nv: usize, out: &mut [u8], stride: usize) {
    // pass 1: columns → nv rows of 8, scaled up by 2^PASS1_BITS
    let mut ws = [0i64; 8 * 16];
    let mut col_out = [0i64; 16];
    for c in 0..8 {
        let mut x = [0i64; 8];
        for (r, v) in x.iter_mut().enumerate() {
            *v = i64::from(coef[r * 8 + c]) * i64::from(q[r * 8 + c]);
        }
        kernel(&x, 1 << (CONST_BITS - PASS1_BITS - 1), nv, &mut col_out);
        for r in 0..nv {
            // libjpeg keeps the pass-1 results in an `int`
            ws[r * 8 + c] = i64::from((col_out[r] >> (CONST_BITS - PASS1_BITS)) as i32);
        }
    }
    // pass 2: rows → nh samples each
    let mut row_out = [0i64; 16];
    for r in 0..nv {
        let mut x = [0i64; 8];
        x.copy_from_slice(&ws[r * 8..r * 8 + 8]);
        kernel(&x, 1 << (PASS1_BITS + 2 + CONST_BITS), nh, &mut row_out);
        let dst = &mut out[r * stride..r * stride + nh];
        for (d, &v) in dst.iter_mut().zip(&row_out[..nh]) {
            *d = range_limit(v >> (CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dc_only_block_is_flat_at_every_size() {
        let mut coef = [0i16; 64];
        let mut q = [1u16; 64];
        q[0] = 8;
        coef[0] = 10; // DC 80 → 80/8 = +10 → sample 138
        for (nh, nv) in [(8, 8), (16, 16), (16, 8), (8, 16)] {
            let mut out = vec![0u8; 16 * 16];
            idct(&coef, &q, nh, nv, &mut out, 16);
            for r in 0..nv {
                assert!(
                    out[r * 16..r * 16 + nh].iter().all(|&v| v == 138),
                    "{nh}×{nv}"
                );
            }
        }
    }

    #[test]
    fn range_limit_clamps_and_wraps_like_libjpeg() {
        assert_eq!(range_limit(-128), 0);
        assert_eq!(range_limit(-129), 0);
        assert_eq!(range_limit(0), 128);
        assert_eq!(range_limit(127), 255);
        assert_eq!(range_limit(511), 255);
        assert_eq!(range_limit(1000), 104); // modulo 1024, as libjpeg's table
    }

    #[test]
    fn ycc_grey_stays_grey_and_primaries_round_like_libjpeg() {
        let mut px = [100, 128, 128, 76, 85, 255];
        ycc_to_rgb(&mut px);
        assert_eq!(px[..3], [100, 100, 100]);
        // Y 76, Cb 85, Cr 255: pure red in full-range BT.601
        assert_eq!(px[3..], [254, 0, 0]);
    }

    #[test]
    fn hostile_streams_are_errors() {
        // no SOI
        let e = format!(
            "{:?}",
            (decode(None, &[0, 1, 2], (8, 8, 8), 1, false)).unwrap_err()
        );
        assert!(e.contains("JpegError(\"no start-of-image marker\")"), "{e}");
        // SOI then a segment running past the end
        assert!(
            decode(
                None,
                &[0xFF, 0xD8, 0xFF, 0xDB, 0xFF, 0xFF],
                (8, 8, 8),
                1,
                false
            )
            .is_err()
        );
        // SOI, EOI: no frame
        let e = format!(
            "{:?}",
            (decode(None, &[0xFF, 0xD8, 0xFF, 0xD9], (8, 8, 8), 1, false)).unwrap_err()
        );
        assert!(e.contains("JpegError(\"no frame header (SOF)\")"), "{e}");
        // a frame of another size than the tile
        let sof = [
            0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0, 0xFF, 0xD9,
        ];
        let e = format!(
            "{:?}",
            (decode(None, &sof, (8, 8, 8), 1, false)).unwrap_err()
        );
        assert!(
            e.contains("JpegError(\"frame of 16×16 px in a tile of 8×8 px\")"),
            "{e}"
        );
        // progressive: left to the other decoder
        let prog = [
            0xFF, 0xD8, 0xFF, 0xC2, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0, 0xFF, 0xD9,
        ];
        assert!(matches!(decode(None, &prog, (8, 8, 8), 1, false), Ok(None)));
        // over-full Huffman table
        let mut dht = vec![0xFF, 0xD8, 0xFF, 0xC4, 0, 19 + 3, 0x00, 3];
        dht.extend([0u8; 15]);
        dht.extend([1, 2, 3, 0xFF, 0xD9]);
        let e = format!(
            "{:?}",
            (decode(None, &dht, (8, 8, 8), 1, false)).unwrap_err()
        );
        assert!(
            e.contains("JpegError(\"Huffman table with more codes than fit their lengths\")"),
            "{e}"
        );
    }
}
