import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crc32 } from "node:zlib";
import sharp, { type OutputInfo } from "sharp";
import {
  addDiffusionNoise,
  MAX_INPUT_PIXELS,
  MAX_NOISED_PIXELS,
  noisedCopySize,
  noisePixels,
} from "../../src/adapters/image-noise.ts";
import { detectImageType, type ImageMediaType } from "../../src/core/image-type.ts";

/** Vertical stripes of two colours, `period` pixels wide: sharp edges and flat regions. */
function stripedPixels(width: number, height: number, period = 6): Buffer {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dark = Math.floor(x / period) % 2 === 0;
      const offset = (y * width + x) * 3;
      pixels[offset] = dark ? 40 : 200;
      pixels[offset + 1] = dark ? 90 : 160;
      pixels[offset + 2] = dark ? 150 : 30;
    }
  }
  return pixels;
}

async function encode(
  raw: Buffer,
  width: number,
  height: number,
  format: "jpeg" | "png" | "webp" | "gif",
  channels: 3 | 4 = 3,
): Promise<Buffer> {
  const image = sharp(raw, { raw: { width, height, channels } });
  switch (format) {
    case "jpeg":
      return image.jpeg({ quality: 90 }).toBuffer();
    case "png":
      return image.png().toBuffer();
    case "webp":
      return image.webp({ quality: 90 }).toBuffer();
    case "gif":
      return image.gif().toBuffer();
  }
}

async function rawPixels(bytes: Uint8Array): Promise<{ data: Buffer; info: OutputInfo }> {
  return sharp(bytes).raw().toBuffer({ resolveWithObject: true });
}

/** Mean absolute difference between horizontally adjacent samples of the first channel. */
async function neighbourDifference(bytes: Uint8Array): Promise<number> {
  const { data, info } = await rawPixels(bytes);
  let sum = 0;
  let pairs = 0;
  for (let y = 0; y < info.height; y++) {
    for (let x = 1; x < info.width; x++) {
      const i = (y * info.width + x) * info.channels;
      sum += Math.abs((data[i] ?? 0) - (data[i - info.channels] ?? 0));
      pairs += 1;
    }
  }
  return sum / pairs;
}

function meanAbsoluteDifference(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return sum / a.length;
}

/** Φ(z), the standard normal CDF, by the Abramowitz–Stegun 7.1.26 erf approximation (error < 1.5·10⁻⁷). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** counts[0] + … + counts[last]. */
function sumTo(counts: readonly number[], last: number): number {
  let sum = 0;
  for (let k = 0; k <= last; k++) sum += counts[k] ?? 0;
  return sum;
}

/** Pearson correlation of samples `lag` apart. */
function lagCorrelation(values: ArrayLike<number>, lag: number): number {
  const n = values.length - lag;
  let sumA = 0;
  let sumB = 0;
  for (let i = 0; i < n; i++) {
    sumA += values[i] ?? 0;
    sumB += values[i + lag] ?? 0;
  }
  const meanA = sumA / n;
  const meanB = sumB / n;
  let cross = 0;
  let squaresA = 0;
  let squaresB = 0;
  for (let i = 0; i < n; i++) {
    const a = (values[i] ?? 0) - meanA;
    const b = (values[i + lag] ?? 0) - meanB;
    cross += a * b;
    squaresA += a * a;
    squaresB += b * b;
  }
  return cross / Math.sqrt(squaresA * squaresB);
}

const WIDTH = 64;
const HEIGHT = 48;

describe("noisedCopySize", () => {
  it("keeps images of at most MAX_NOISED_PIXELS pixels as they are", () => {
    assert.deepEqual(noisedCopySize(64, 48), { width: 64, height: 48 });
    assert.deepEqual(noisedCopySize(2048, 2048), { width: 2048, height: 2048 });
    assert.deepEqual(noisedCopySize(4096, 1024), { width: 4096, height: 1024 });
  });

  it("scales larger images to fit the cap, keeping the aspect ratio to within a pixel", () => {
    for (const [width, height] of [
      [8660, 5774],
      [2049, 2048],
      [12_000, 500],
      [300, 40_000],
      [10_000, 10_000],
    ] as const) {
      const size = noisedCopySize(width, height);
      assert.ok(size.width * size.height <= MAX_NOISED_PIXELS, `${width}×${height}`);
      // Rounding down each side loses less than a pixel per side.
      assert.ok(
        size.width * size.height > MAX_NOISED_PIXELS - size.width - size.height - 1,
        `${width}×${height}`,
      );
      assert.ok(
        Math.abs(size.width / size.height - width / height) <=
          (width / height) * (1 / size.height + 1 / size.width),
      );
    }
    assert.deepEqual(noisedCopySize(10_000, 10_000), { width: 2048, height: 2048 });
    // Too thin to keep the aspect ratio: the short side stays 1 px, the long one takes the whole cap.
    assert.deepEqual(noisedCopySize(1_000_000, 1, 100), { width: 100, height: 1 });
    assert.deepEqual(noisedCopySize(3, 4_000, 100), { width: 1, height: 100 });
  });
});

describe("addDiffusionNoise", () => {
  it("is deterministic: same (image, strength, seed) gives the same bytes, another seed other bytes", async () => {
    const png = await encode(stripedPixels(WIDTH, HEIGHT), WIDTH, HEIGHT, "png");
    const first = await addDiffusionNoise(png, "image/png", { strength: 0.3, seed: 5 });
    const again = await addDiffusionNoise(png, "image/png", { strength: 0.3, seed: 5 });
    const other = await addDiffusionNoise(png, "image/png", { strength: 0.3, seed: 6 });
    assert.ok(first.bytes.equals(again.bytes));
    assert.ok(!first.bytes.equals(other.bytes));

    const jpeg = await encode(stripedPixels(WIDTH, HEIGHT), WIDTH, HEIGHT, "jpeg");
    const jpegFirst = await addDiffusionNoise(jpeg, "image/jpeg", { strength: 0.3, seed: 5 });
    const jpegAgain = await addDiffusionNoise(jpeg, "image/jpeg", { strength: 0.3, seed: 5 });
    assert.ok(jpegFirst.bytes.equals(jpegAgain.bytes));
  });

  it("keeps every pixel at strength 0: PNG exactly, JPEG and WebP as a plain re-encode at quality 90", async () => {
    const raw = stripedPixels(WIDTH, HEIGHT);
    const png = await encode(raw, WIDTH, HEIGHT, "png");
    const same = await addDiffusionNoise(png, "image/png", { strength: 0, seed: 1 });
    assert.ok((await rawPixels(same.bytes)).data.equals((await rawPixels(png)).data));

    for (const [format, mediaType] of [
      ["jpeg", "image/jpeg"],
      ["webp", "image/webp"],
    ] as const) {
      const input = await encode(raw, WIDTH, HEIGHT, format);
      const output = await addDiffusionNoise(input, mediaType, { strength: 0, seed: 1 });
      const decoded = await rawPixels(input);
      const reencoder = sharp(decoded.data, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } });
      const reencoded =
        format === "jpeg"
          ? await reencoder.jpeg({ quality: 90, chromaSubsampling: "4:4:4" }).toBuffer()
          : await reencoder.webp({ quality: 90 }).toBuffer();
      const after = (await rawPixels(output.bytes)).data;
      assert.ok(after.equals((await rawPixels(reencoded)).data), format);
      // Generation loss of one lossy round trip on saturated colour edges: a few grey levels, where even
      // strength 0.05 (σ ≈ 28 grey levels) moves about twenty.
      const drift = meanAbsoluteDifference(decoded.data, after);
      assert.ok(drift < 8, `${format}: mean drift ${drift} grey levels at strength 0`);
    }
  });

  it("re-encodes in the input's format, GIF as PNG", async () => {
    const raw = stripedPixels(WIDTH, HEIGHT);
    const cases: { format: "jpeg" | "png" | "webp" | "gif"; mediaType: ImageMediaType; out: string }[] = [
      { format: "jpeg", mediaType: "image/jpeg", out: "jpeg" },
      { format: "png", mediaType: "image/png", out: "png" },
      { format: "webp", mediaType: "image/webp", out: "webp" },
      { format: "gif", mediaType: "image/gif", out: "png" },
    ];
    for (const { format, mediaType, out } of cases) {
      const input = await encode(raw, WIDTH, HEIGHT, format);
      assert.equal(detectImageType(input), format);
      const noised = await addDiffusionNoise(input, mediaType, { strength: 0.2, seed: 3 });
      assert.equal(detectImageType(noised.bytes), out, format);
      assert.equal(noised.mediaType, `image/${out}`, format);
      const metadata = await sharp(noised.bytes).metadata();
      assert.equal(metadata.width, WIDTH, format);
      assert.equal(metadata.height, HEIGHT, format);
    }
  });

  it("makes images noisier as strength grows", async () => {
    const png = await encode(stripedPixels(WIDTH, HEIGHT), WIDTH, HEIGHT, "png");
    const differences: number[] = [];
    for (const strength of [0, 0.05, 0.2, 0.5, 1]) {
      const noised = await addDiffusionNoise(png, "image/png", { strength, seed: 9 });
      differences.push(await neighbourDifference(noised.bytes));
    }
    for (let i = 1; i < differences.length; i++) {
      assert.ok(
        (differences[i] ?? 0) > (differences[i - 1] ?? 0),
        `neighbour difference should grow with strength: ${differences.join(", ")}`,
      );
    }
  });

  it("follows x' = sqrt(1-γ)·x + sqrt(γ)·ε: mean kept on mid-grey, spread 127.5·sqrt(γ)", async () => {
    const size = 128;
    const grey = await sharp({
      create: { width: size, height: size, channels: 3, background: { r: 128, g: 128, b: 128 } },
    })
      .png()
      .toBuffer();
    const strength = 0.16;
    const { data } = await rawPixels(
      (await addDiffusionNoise(grey, "image/png", { strength, seed: 2 })).bytes,
    );
    let sum = 0;
    let squares = 0;
    for (const value of data) {
      sum += value;
      squares += value * value;
    }
    const mean = sum / data.length;
    const sd = Math.sqrt(squares / data.length - mean * mean);
    // x = 128/127.5 − 1 ≈ 0.004: the mean stays ≈ 128; σ = 127.5·0.4 = 51, barely clamped at ±2.5σ.
    assert.ok(Math.abs(mean - 128) < 1.5, `mean ${mean}`);
    assert.ok(Math.abs(sd - 51) < 2, `standard deviation ${sd}`);
  });

  it("draws ε from N(0, 1): the distribution of noised mid-grey matches the normal CDF, tails included", () => {
    // 512×512 RGB mid-grey. At γ = 0.04, σ = 127.5·0.2 = 25.5 grey levels, so ±4.3σ (the table's extremes)
    // stays inside 0..255 and nothing is clamped; at γ = 1, σ = 127.5 and a sixth of the samples clamp to
    // each end. Output level k < 255 collects centre + σ·ε in [k − ½, k + ½), level 255 everything above.
    const samples = 512 * 512 * 3;
    for (const [strength, seed] of [
      [0.04, 0],
      [0.04, 1],
      [0.04, 123_456_789],
      [1, 3],
    ] as const) {
      const sigma = 127.5 * Math.sqrt(strength);
      const centre = 127.5 + Math.sqrt(1 - strength) * (128 - 127.5);
      const out = noisePixels(new Uint8Array(samples).fill(128), 3, 3, strength, seed);
      const counts = new Array<number>(256).fill(0);
      for (const value of out) counts[value] = (counts[value] ?? 0) + 1;
      const expectedBelow = (k: number): number => (k >= 255 ? 1 : normalCdf((k + 0.5 - centre) / sigma));
      // Kolmogorov–Smirnov over the levels: 1.63/√n is the 1% critical value.
      let below = 0;
      let worst = 0;
      for (let k = 0; k < 256; k++) {
        below += counts[k] ?? 0;
        worst = Math.max(worst, Math.abs(below / samples - expectedBelow(k)));
      }
      const label = `γ = ${strength}, seed ${seed}`;
      assert.ok(worst < 1.63 / Math.sqrt(samples), `${label}: KS distance ${worst}`);
      // The mass at the ends (clamped at γ = 1; beyond ±3σ at γ = 0.04), within 4 binomial standard deviations.
      const low = strength === 1 ? 0 : Math.ceil(centre - 3 * sigma) - 1;
      const high = strength === 1 ? 255 : Math.floor(centre + 3 * sigma) + 1;
      for (const [level, observed, p] of [
        [low, sumTo(counts, low), expectedBelow(low)],
        [high, samples - sumTo(counts, high - 1), 1 - expectedBelow(high - 1)],
      ] as const) {
        const expected = p * samples;
        assert.ok(
          Math.abs(observed - expected) < 4 * Math.sqrt(expected * (1 - p)),
          `${label}: ${observed} samples at or beyond level ${level}, expected ${expected.toFixed(0)}`,
        );
      }
    }
  });

  it("draws ε independently: no correlation between neighbouring samples, channels, pixels or rows", () => {
    const width = 512;
    const samples = width * 512 * 3;
    const out = noisePixels(new Uint8Array(samples).fill(128), 3, 3, 0.04, 7);
    // Lag 1 pairs the two halves of one 32-bit output (or two consecutive outputs), 3 is the next pixel's
    // same channel, 3·width the next row's.
    for (const lag of [1, 2, 3, 4, 6, 3 * width]) {
      const r = lagCorrelation(out, lag);
      assert.ok(Math.abs(r) < 4 / Math.sqrt(samples), `lag ${lag}: correlation ${r}`);
    }
  });

  it("gives the k-th normal to the k-th colour sample: alpha channels do not shift the noise", () => {
    const pixels = 101; // odd, so the grey image ends on half of a 32-bit output
    const grey = new Uint8Array(pixels).map((_, p) => (p * 37) % 256);
    const rgb = new Uint8Array(pixels * 3).map((_, i) => (i * 53) % 256);
    const rgba = new Uint8Array(pixels * 4);
    const greyAlpha = new Uint8Array(pixels * 2);
    for (let p = 0; p < pixels; p++) {
      rgba.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
      rgba[p * 4 + 3] = p;
      greyAlpha[p * 2] = grey[p] ?? 0;
      greyAlpha[p * 2 + 1] = 255 - p;
    }
    const noisedRgb = noisePixels(rgb, 3, 3, 0.3, 11);
    const noisedRgba = noisePixels(rgba, 4, 3, 0.3, 11);
    const noisedGrey = noisePixels(grey, 1, 1, 0.3, 11);
    const noisedGreyAlpha = noisePixels(greyAlpha, 2, 1, 0.3, 11);
    for (let p = 0; p < pixels; p++) {
      for (let channel = 0; channel < 3; channel++) {
        assert.equal(
          noisedRgba[p * 4 + channel],
          noisedRgb[p * 3 + channel],
          `pixel ${p} channel ${channel}`,
        );
      }
      assert.equal(noisedRgba[p * 4 + 3], p);
      assert.equal(noisedGreyAlpha[p * 2], noisedGrey[p], `grey pixel ${p}`);
      assert.equal(noisedGreyAlpha[p * 2 + 1], 255 - p);
    }
  });

  it("takes seeds modulo 2^32", () => {
    const data = new Uint8Array(300).map((_, i) => i % 256);
    const of = (seed: number) => Array.from(noisePixels(data, 3, 3, 0.5, seed));
    assert.deepEqual(of(5 + 2 ** 32), of(5));
    assert.deepEqual(of(-1), of(2 ** 32 - 1));
    assert.notDeepEqual(of(5), of(6));
  });

  it("is pure noise at strength 1: the output no longer depends on the image", async () => {
    const striped = await encode(stripedPixels(WIDTH, HEIGHT), WIDTH, HEIGHT, "png");
    const flat = await sharp({
      create: { width: WIDTH, height: HEIGHT, channels: 3, background: { r: 10, g: 20, b: 30 } },
    })
      .png()
      .toBuffer();
    const a = await addDiffusionNoise(striped, "image/png", { strength: 1, seed: 4 });
    const b = await addDiffusionNoise(flat, "image/png", { strength: 1, seed: 4 });
    assert.ok((await rawPixels(a.bytes)).data.equals((await rawPixels(b.bytes)).data));
  });

  it("noises colour channels only and keeps alpha untouched", async () => {
    const rgb = stripedPixels(WIDTH, HEIGHT);
    const rgba = Buffer.alloc(WIDTH * HEIGHT * 4);
    for (let p = 0; p < WIDTH * HEIGHT; p++) {
      rgba[p * 4] = rgb[p * 3] ?? 0;
      rgba[p * 4 + 1] = rgb[p * 3 + 1] ?? 0;
      rgba[p * 4 + 2] = rgb[p * 3 + 2] ?? 0;
      rgba[p * 4 + 3] = p % 256;
    }
    const png = await encode(rgba, WIDTH, HEIGHT, "png", 4);
    const noised = await addDiffusionNoise(png, "image/png", { strength: 0.5, seed: 1 });
    const { data, info } = await rawPixels(noised.bytes);
    assert.equal(info.channels, 4);
    let alphaChanged = 0;
    let colourChanged = 0;
    for (let p = 0; p < WIDTH * HEIGHT; p++) {
      if (data[p * 4 + 3] !== p % 256) alphaChanged += 1;
      if (data[p * 4] !== rgba[p * 4]) colourChanged += 1;
    }
    assert.equal(alphaChanged, 0);
    assert.ok(colourChanged > (WIDTH * HEIGHT) / 2);
  });

  it("applies EXIF orientation before noising, so the noised copy shows the picture the same way up", async () => {
    const jpeg = await sharp(stripedPixels(40, 20), { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const noised = await addDiffusionNoise(jpeg, "image/jpeg", { strength: 0.1, seed: 1 });
    const metadata = await sharp(noised.bytes).metadata();
    assert.equal(metadata.width, 20);
    assert.equal(metadata.height, 40);
    assert.ok(metadata.orientation === undefined || metadata.orientation === 1);
  });

  it("rejects a strength outside [0, 1], a non-finite strength and a non-integer seed with RangeError", async () => {
    const png = await encode(stripedPixels(8, 8), 8, 8, "png");
    for (const strength of [-0.01, 1.01, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      await assert.rejects(addDiffusionNoise(png, "image/png", { strength, seed: 1 }), RangeError);
    }
    await assert.rejects(addDiffusionNoise(png, "image/png", { strength: 0.5, seed: 1.5 }), RangeError);
  });

  it("rejects bytes that are not an image with an Error saying so, sharp's error as cause", async () => {
    const png = await encode(stripedPixels(16, 16), 16, 16, "png");
    const corrupt = [
      Buffer.from("definitely not an image"),
      // A PNG signature followed by garbage, and a PNG cut in half.
      Buffer.concat([png.subarray(0, 8), Buffer.alloc(64, 0x41)]),
      png.subarray(0, Math.floor(png.length / 2)),
    ];
    for (const bytes of corrupt) {
      await assert.rejects(addDiffusionNoise(bytes, "image/png", { strength: 0.5, seed: 1 }), (error) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, /could not decode the image/);
        assert.ok(error.cause instanceof Error);
        return true;
      });
    }
  });

  it("downscales the noised copy of a 50-megapixel PNG to at most MAX_NOISED_PIXELS, aspect ratio kept", async () => {
    // 8,660 × 5,780 (50.1 MP): the stripes image blown up 10× (nearest neighbour, so 60-px stripes).
    const width = 8660;
    const height = 5780;
    const small = stripedPixels(width / 10, height / 10);
    const png = await sharp(small, { raw: { width: width / 10, height: height / 10, channels: 3 } })
      .resize({ width, height, kernel: "nearest" })
      .png()
      .toBuffer();
    const expected = noisedCopySize(width, height);
    assert.deepEqual(expected, { width: 2506, height: 1673 });

    const noised = await addDiffusionNoise(png, "image/png", { strength: 0.5, seed: 8 });
    assert.equal(noised.mediaType, "image/png");
    assert.equal(detectImageType(noised.bytes), "png");
    // Valid: it decodes in full, at the capped size.
    const { data, info } = await rawPixels(noised.bytes);
    assert.deepEqual([info.width, info.height, info.channels], [expected.width, expected.height, 3]);
    assert.ok(info.width * info.height <= MAX_NOISED_PIXELS);
    assert.ok(
      (await addDiffusionNoise(png, "image/png", { strength: 0.5, seed: 8 })).bytes.equals(noised.bytes),
    );

    // The downscaled picture, not a crop: at strength 0 it is exactly sharp's own downscale of the image;
    // at 0.5 (σ ≈ 90 grey levels, clamped) the noise moves samples by tens of grey levels on average.
    const clean = await sharp(png)
      .resize({ width: expected.width, height: expected.height, fit: "fill" })
      .raw()
      .toBuffer();
    const unnoised = await addDiffusionNoise(png, "image/png", { strength: 0, seed: 8 });
    assert.ok((await rawPixels(unnoised.bytes)).data.equals(clean));
    const moved = meanAbsoluteDifference(data, clean);
    assert.ok(moved > 40, `mean difference from the clean downscale: ${moved} grey levels`);
  });

  it("caps a rotated 12-megapixel JPEG in its displayed orientation (shrunk on load)", async () => {
    const jpeg = await sharp({
      create: { width: 4000, height: 3000, channels: 3, background: { r: 90, g: 120, b: 200 } },
    })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const noised = await addDiffusionNoise(jpeg, "image/jpeg", { strength: 0.2, seed: 1 });
    assert.equal(detectImageType(noised.bytes), "jpeg");
    const metadata = await sharp(noised.bytes).metadata();
    // Orientation 6 shows the 4,000 × 3,000 picture as 3,000 × 4,000: the copy is portrait as well.
    assert.deepEqual({ width: metadata.width, height: metadata.height }, noisedCopySize(3000, 4000));
    assert.deepEqual(noisedCopySize(3000, 4000), { width: 1773, height: 2364 });
  });

  it("refuses an image of more than MAX_INPUT_PIXELS pixels from its header, without decoding it", async () => {
    // A 1×1 PNG whose header (IHDR: width, height at bytes 16–23, its CRC at 29–32) claims 10,001 × 10,001.
    const png = Buffer.from(await encode(Buffer.alloc(3), 1, 1, "png"));
    const side = Math.floor(Math.sqrt(MAX_INPUT_PIXELS)) + 1;
    png.writeUInt32BE(side, 16);
    png.writeUInt32BE(side, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
    const claimed = await sharp(png, { limitInputPixels: false }).metadata();
    assert.equal(claimed.width * claimed.height, side * side);
    await assert.rejects(addDiffusionNoise(png, "image/png", { strength: 0.5, seed: 1 }), (error) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /could not decode the image.*pixel limit/);
      return true;
    });
  });

  it("noises a 1024×1024 image quickly (timing logged, not asserted)", async () => {
    const size = 1024;
    const jpeg = await encode(stripedPixels(size, size, 16), size, size, "jpeg");
    const bestOf = async (runs: number, task: (run: number) => unknown): Promise<number> => {
      let best = Number.POSITIVE_INFINITY;
      for (let run = 0; run < runs; run++) {
        const started = performance.now();
        await task(run);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    // Warm-up: JIT, the quantile table and sharp's thread pool.
    const noised = await addDiffusionNoise(jpeg, "image/jpeg", { strength: 0.5, seed: 0 });
    const noisedRaw = await sharp(noised.bytes).raw().toBuffer();
    const decoded = await sharp(jpeg).autoOrient().raw().toBuffer();
    noisePixels(decoded, 3, 3, 0.5, 0);
    const total = await bestOf(5, (run) =>
      addDiffusionNoise(jpeg, "image/jpeg", { strength: 0.5, seed: run }),
    );
    const decode = await bestOf(5, () => sharp(jpeg).autoOrient().raw().toBuffer());
    const loop = await bestOf(5, (run) => noisePixels(decoded, 3, 3, 0.5, run));
    // Encoding noise is far costlier than encoding the clean stripes, so time it on a noised image.
    const encodeNoised = await bestOf(5, () =>
      sharp(noisedRaw, { raw: { width: size, height: size, channels: 3 } })
        .jpeg({ quality: 90, chromaSubsampling: "4:4:4" })
        .toBuffer(),
    );
    console.log(
      `addDiffusionNoise on a 1024×1024 RGB JPEG (best of 5): ${total.toFixed(1)} ms in all; ` +
        `decode ${decode.toFixed(1)} ms, noise loop ${loop.toFixed(1)} ms, ` +
        `JPEG encode of the noised pixels ${encodeNoised.toFixed(1)} ms (${noised.bytes.length} bytes)`,
    );
  });
});
