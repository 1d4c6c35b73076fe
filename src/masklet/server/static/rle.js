// COCO compressed RLE (pycocotools' string form), the masks' wire format.
// A mask is a Uint8Array of h * w in row-major order (index y * w + x); RLE runs go over the
// pixels in column-major order (x * h + y) and start with a run of zeros.

export function decodeRle(rle) {
  const [h, w] = rle.size;
  const s = rle.counts;
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const mask = new Uint8Array(h * w);
  let index = 0, value = 0;
  for (const run of counts) {
    for (let i = 0; i < run; i += 1) {
      const col = Math.floor((index + i) / h), row = (index + i) % h;
      if (value) mask[row * w + col] = 1;
    }
    index += run;
    value = 1 - value;
  }
  return mask;
}

export function encodeRle(mask, h, w) {
  const counts = [];
  let last = 0, run = 0;
  for (let col = 0; col < w; col += 1) {
    for (let row = 0; row < h; row += 1) {
      const v = mask[row * w + col] ? 1 : 0;
      if (v !== last) { counts.push(run); run = 0; last = v; }
      run += 1;
    }
  }
  counts.push(run);
  let s = "";
  for (let i = 0; i < counts.length; i += 1) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = 1;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return { size: [h, w], counts: s };
}
